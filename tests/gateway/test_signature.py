"""PROTOCOL §3.2: the spec's test vectors, and round trips over any unicode."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from openplatform.gateway.signature import (
    SIGN_METHODS,
    SignMethod,
    canonical_string,
    sign,
    verify_signature,
)

SECRET = "5ebe2294ecd0e0f08eab7690d2a6ee69"
VECTOR = [
    ("method", "users.getInfo"),
    ("api_key", "ak_test_0001"),
    ("call_id", "1700000000001"),
    ("timestamp", "1700000000"),
    ("v", "2.0"),
    ("uids", "10001,10002"),
    ("fields", "uid,username,display_name"),
    ("format", "json"),
]


def test_canonical_string_of_the_spec_vector() -> None:
    assert canonical_string(VECTOR) == (
        b"api_key=ak_test_0001call_id=1700000000001fields=uid,username,display_name"
        b"format=jsonmethod=users.getInfotimestamp=1700000000uids=10001,10002v=2.0"
    )


def test_md5_vector() -> None:
    assert sign(VECTOR, SECRET) == "b0f5f74197fd549c7281edd1b962bc6f"
    assert sign(VECTOR, SECRET, "md5") == "b0f5f74197fd549c7281edd1b962bc6f"


def test_hmac_sha256_vector() -> None:
    params = [*VECTOR, ("sign_method", "hmac-sha256")]
    assert (
        sign(params, SECRET, "hmac-sha256")
        == "be10146dca6f609377c512cf214c9c667d4ab2672c183d85405290a8ccd36a41"
    )


def test_session_secret_vector_with_unicode_value() -> None:
    params = [
        ("method", "data.setUserPreference"),
        ("api_key", "ak_test_0001"),
        ("timestamp", "1700000000"),
        ("pref_id", "7"),
        ("value", "你好 world+1&="),
        ("session_key", "sk_abc"),
    ]
    assert sign(params, "sess_secret_xyz") == "86d88af587b3091d5bcd8cdb57d9d848"


def test_sig_is_not_signed() -> None:
    assert sign([*VECTOR, ("sig", "whatever")], SECRET) == sign(VECTOR, SECRET)


def test_keys_sort_as_utf8_bytes() -> None:
    # "é" (U+00E9) sorts after "z" as bytes; "Z" before "a".
    assert canonical_string([("é", "1"), ("z", "2"), ("a", "3"), ("Z", "4")]) == (
        "Z=4a=3z=2é=1".encode()
    )


def test_verify_accepts_right_and_refuses_wrong() -> None:
    good = sign(VECTOR, SECRET)
    assert verify_signature(VECTOR, good, SECRET)
    assert not verify_signature(VECTOR, good.upper(), SECRET)
    assert not verify_signature(VECTOR, good[:-1] + "0", SECRET)
    assert not verify_signature(VECTOR, good, SECRET + "x")
    assert not verify_signature(VECTOR, "你好", SECRET)
    assert not verify_signature(VECTOR, good, SECRET, "hmac-sha256")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(
    params=st.dictionaries(_text.filter(lambda k: k != "sig"), _text, max_size=12),
    secret=_text,
    method=st.sampled_from(SIGN_METHODS),
)
def test_sign_round_trips_any_unicode(
    params: dict[str, str], secret: str, method: SignMethod
) -> None:
    pairs = list(params.items())
    sig = sign(pairs, secret, method)
    assert verify_signature(list(reversed(pairs)), sig, secret, method)
    if pairs:
        key, value = pairs[0]
        assert not verify_signature([(key, value + "x"), *pairs[1:]], sig, secret, method)
