"""Signatures (PROTOCOL §3.2 and its test vectors), parameter encoding, and
what every signed request carries."""

from __future__ import annotations

import threading

import httpx
import pytest

from openplatform_client import Client, canonical_string, sign
from openplatform_client._call_ids import CallIdSequence
from openplatform_client._encoding import encode_params
from tests.client.fake_gateway import API_KEY, BASE_URL, SECRET, FakeGateway, answer

VECTOR = {
    "method": "users.getInfo",
    "api_key": "ak_test_0001",
    "call_id": "1700000000001",
    "timestamp": "1700000000",
    "v": "2.0",
    "uids": "10001,10002",
    "fields": "uid,username,display_name",
    "format": "json",
}
VECTOR_SECRET = "5ebe2294ecd0e0f08eab7690d2a6ee69"


def test_protocol_vectors() -> None:
    assert canonical_string(VECTOR.items()) == (
        b"api_key=ak_test_0001call_id=1700000000001fields=uid,username,display_name"
        b"format=jsonmethod=users.getInfotimestamp=1700000000uids=10001,10002v=2.0"
    )
    assert sign(VECTOR.items(), VECTOR_SECRET) == "b0f5f74197fd549c7281edd1b962bc6f"
    hmac_params = [*VECTOR.items(), ("sign_method", "hmac-sha256")]
    assert sign(hmac_params, VECTOR_SECRET, "hmac-sha256") == (
        "be10146dca6f609377c512cf214c9c667d4ab2672c183d85405290a8ccd36a41"
    )
    session = {
        "method": "data.setUserPreference",
        "api_key": "ak_test_0001",
        "timestamp": "1700000000",
        "pref_id": "7",
        "value": "你好 world+1&=",
        "session_key": "sk_abc",
    }
    assert sign(session.items(), "sess_secret_xyz") == "86d88af587b3091d5bcd8cdb57d9d848"


def test_sorting_is_by_utf8_bytes() -> None:
    assert canonical_string([("é", "1"), ("z", "2"), ("Z", "3")]) == "Z=3z=2é=1".encode()


def test_parameter_encoding() -> None:
    assert encode_params(
        {
            "uids": [1, 2],
            "fields": ("username",),
            "properties": {"a": 1, "b": "你"},
            "replace": True,
            "no_data": False,
            "n": 0,
            "skipped": None,
            "names": ["a,b", "c"],
        }
    ) == {
        "uids": "1,2",
        "fields": "username",
        "properties": '{"a":1,"b":"你"}',
        "replace": "true",
        "no_data": "false",
        "n": "0",
        "names": '["a,b","c"]',
    }
    with pytest.raises(ValueError, match="sig"):
        encode_params({"sig": "x"})


def test_signed_requests_carry_timestamp_call_id_and_a_valid_sig() -> None:
    """The fake gateway verifies every signature with the server's own code."""
    fake = FakeGateway([answer([])])
    client = Client(
        API_KEY,
        SECRET,
        base_url=BASE_URL,
        sign_method="hmac-sha256",
        lang="zh",
        http_client=httpx.Client(transport=fake.transport()),
    )
    client.users.get_info(uids=[1])
    client.users.get_info(uids=[1])
    first, second = (r.params for r in fake.received)
    assert first["sign_method"] == "hmac-sha256" and first["lang"] == "zh"
    assert first["api_key"] == API_KEY and first["timestamp"].isdigit()
    assert "method" not in first  # the path names it; it is signed all the same
    assert int(second["call_id"]) > int(first["call_id"])


def test_bearer_requests_carry_no_signature() -> None:
    fake = FakeGateway([answer({"uid": 1})])
    client = Client(
        access_token="tok", base_url=BASE_URL, http_client=httpx.Client(transport=fake.transport())
    )
    assert client.users.get_logged_in_user() == 1
    (sent,) = fake.received
    assert sent.headers["Authorization"] == "Bearer tok"
    assert sent.params == {}


def test_call_ids_strictly_increase_across_threads() -> None:
    sequence = CallIdSequence(clock_us=lambda: 1_000)  # a clock that stands still
    seen: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        ids = [sequence.next() for _ in range(1000)]
        assert ids == sorted(ids)
        with lock:
            seen.extend(ids)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == list(range(1_000, 9_000))


def test_credentials_are_checked() -> None:
    with pytest.raises(ValueError, match="api_key"):
        Client(secret="s")
    with pytest.raises(ValueError, match="together"):
        Client("k", session_key="sk")
    with pytest.raises(ValueError, match="no credential"):
        Client("k").users.get_info(uids=[1])
