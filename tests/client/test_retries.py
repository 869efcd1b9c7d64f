"""The retry rule (client/src/openplatform_client/_retries.py and the README):
4 and 103 are resent for any call, 2 and 805 for idempotent calls only,
``Retry-After`` honoured, every retry re-signed — against a fake gateway that
answers them, with the waits recorded by an injected sleep."""

from __future__ import annotations

import httpx
import pytest

from openplatform_client import (
    APIConnectionError,
    APIError,
    AsyncClient,
    Client,
    DatabaseError,
    RateLimitError,
    RetryPolicy,
    ServiceUnavailableError,
)
from tests.client.fake_gateway import API_KEY, BASE_URL, SECRET, FakeGateway, answer, error

INC = {"obj_type": "counter", "key": "k", "prop_name": "n"}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(fake: FakeGateway, sleeps: Sleeps, **options: object) -> Client:
    return Client(
        API_KEY,
        SECRET,
        base_url=BASE_URL,
        http_client=httpx.Client(transport=fake.transport()),
        sleep=sleeps,
        **options,  # type: ignore[arg-type]
    )


def test_rate_limited_writes_are_resent_after_retry_after() -> None:
    """4 is refused at check 13, before the method: even incHashValue is resent."""
    fake = FakeGateway([error(4, retry_after="3"), answer({"value": 8})])
    sleeps = Sleeps()
    assert client(fake, sleeps).data.inc_hash_value(**INC) == 8
    assert fake.methods == ["data.incHashValue"] * 2
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 3.0 * 1.25


def test_every_retry_is_signed_anew() -> None:
    fake = FakeGateway([error(4, retry_after="1"), error(4, retry_after="1"), answer({"uid": 1})])
    sdk = client(fake, Sleeps())
    assert sdk.users.get_logged_in_user() == 1
    first, second, third = (r.params for r in fake.received)
    assert int(first["call_id"]) < int(second["call_id"]) < int(third["call_id"])
    assert len({first["sig"], second["sig"], third["sig"]}) == 3


@pytest.mark.parametrize("code", [2, 805])
def test_2_and_805_are_resent_for_idempotent_calls(code: int) -> None:
    fake = FakeGateway([error(code, retry_after="2"), error(code), answer([{"uid": 1}])])
    sleeps = Sleeps()
    users = client(fake, sleeps).users.get_info(uids=[1])
    assert [u.uid for u in users] == [1]
    assert fake.methods == ["users.getInfo"] * 3
    # The server's Retry-After first; without one, the backoff of retry 2 (2 × 0.5 s).
    assert 2.0 <= sleeps[0] <= 2.5
    assert 1.0 <= sleeps[1] <= 1.25


@pytest.mark.parametrize(("code", "cls"), [(2, ServiceUnavailableError), (805, DatabaseError)])
def test_2_and_805_are_not_resent_for_calls_that_may_have_run(
    code: int, cls: type[Exception]
) -> None:
    """An outage mid-method (2) or a commit whose answer was lost (805) may
    have run the write: incHashValue and createObject are sent once."""
    fake = FakeGateway([error(code, retry_after="1")])
    sleeps = Sleeps()
    sdk = client(fake, sleeps)
    with pytest.raises(cls) as caught:
        sdk.data.inc_hash_value(**INC)
    assert caught.value.retry_after == 1.0 and caught.value.request_id == "req-err"
    with pytest.raises(cls):
        sdk.data.create_object("note", {"text": "hi"})
    with pytest.raises(cls):
        sdk.call("data.setAssociation", name="likes", obj_id1=1, obj_id2=2)
    assert fake.methods == ["data.incHashValue", "data.createObject", "data.setAssociation"]
    assert sleeps == []


def test_idempotent_override() -> None:
    fake = FakeGateway([error(2), answer({"value": 2})])
    sleeps = Sleeps()
    assert client(fake, sleeps).call("data.incHashValue", idempotent=True, **INC) == {"value": 2}
    assert len(fake.received) == 2
    fake = FakeGateway([error(2), answer([])])
    with pytest.raises(ServiceUnavailableError):
        client(fake, sleeps).call("users.getInfo", idempotent=False, uids=[1])
    assert len(fake.received) == 1


def test_max_retries_then_the_error() -> None:
    fake = FakeGateway([error(4, retry_after="1")])
    sleeps = Sleeps()
    with pytest.raises(RateLimitError) as caught:
        client(fake, sleeps, max_retries=3).users.get_info(uids=[1])
    assert len(fake.received) == 4 and len(sleeps) == 3
    assert caught.value.code == 4 and caught.value.retry_after == 1.0
    fake = FakeGateway([error(4, retry_after="1")])
    with pytest.raises(RateLimitError):
        client(fake, Sleeps(), max_retries=0).users.get_info(uids=[1])
    assert len(fake.received) == 1


def test_backoff_doubles_with_jitter_without_retry_after() -> None:
    fake = FakeGateway([error(805), error(805), error(805), answer({"value": ""})])
    sleeps = Sleeps()
    policy = RetryPolicy(max_retries=3, initial_delay=0.5, max_delay=1.5, jitter=0.25)
    client(fake, sleeps, retry_policy=policy).data.get_user_preference(7)
    assert 0.5 <= sleeps[0] <= 0.625
    assert 1.0 <= sleeps[1] <= 1.25
    assert 1.5 <= sleeps[2] <= 1.875  # capped at max_delay


def test_a_retry_after_beyond_max_retry_after_is_not_waited_for() -> None:
    fake = FakeGateway([error(4, retry_after="3600"), answer([])])
    sleeps = Sleeps()
    with pytest.raises(RateLimitError) as caught:
        client(fake, sleeps).users.get_info(uids=[1])
    assert caught.value.retry_after == 3600.0
    assert len(fake.received) == 1 and sleeps == []


def test_retry_after_as_an_http_date() -> None:
    fake = FakeGateway([error(4, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"), answer([])])
    sleeps = Sleeps()
    client(fake, sleeps).users.get_info(uids=[1])
    assert sleeps == [0.0]  # a date in the past: at once


def test_call_id_races_are_resent_at_once_for_any_call() -> None:
    """103: refused at check 11, before the method."""
    fake = FakeGateway([error(103), error(103), error(103), answer({"value": 3})])
    sleeps = Sleeps()
    assert client(fake, sleeps, max_retries=0).data.inc_hash_value(**INC) == 3
    assert len(fake.received) == 4 and sleeps == []
    ids = [int(r.params["call_id"]) for r in fake.received]
    assert ids == sorted(set(ids))


def test_other_errors_are_not_resent() -> None:
    for code in (1, 100, 104, 107, 110, 803):
        fake = FakeGateway([error(code), answer([])])
        with pytest.raises(APIError) as caught:
            client(fake, Sleeps()).users.get_info(uids=[1])
        assert caught.value.code == code
        assert len(fake.received) == 1


def test_connections_never_made_are_resent_for_any_call() -> None:
    fake = FakeGateway([httpx.ConnectError("refused"), answer({"value": 1})])
    sleeps = Sleeps()
    assert client(fake, sleeps).data.inc_hash_value(**INC) == 1
    assert len(fake.received) == 2 and len(sleeps) == 1


def test_answers_lost_after_sending_are_resent_for_idempotent_calls_only() -> None:
    fake = FakeGateway([httpx.ReadTimeout("slow"), answer({"value": 1})])
    with pytest.raises(APIConnectionError) as caught:
        client(fake, Sleeps()).data.inc_hash_value(**INC)
    assert caught.value.request_sent is True
    assert len(fake.received) == 1
    fake = FakeGateway([httpx.RemoteProtocolError("reset"), answer({"value": "x"})])
    assert client(fake, Sleeps()).data.get_hash_value("t", "k", "p") == "x"
    assert len(fake.received) == 2


def test_legacy_http_200_errors_are_errors() -> None:
    """Apps with legacy_http_200 get errors with HTTP 200: X-Error-Code tells."""
    fake = FakeGateway([error(4, retry_after="1", legacy_http_200=True), answer([])])
    sleeps = Sleeps()
    client(fake, sleeps).users.get_info(uids=[1])
    assert len(fake.received) == 2 and len(sleeps) == 1


async def test_async_retries_follow_the_same_rule() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    fake = FakeGateway([error(4, retry_after="2"), error(2), answer({"value": 5})])
    async with AsyncClient(
        API_KEY,
        SECRET,
        base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=fake.async_transport()),
        sleep=sleep,
    ) as sdk:
        with pytest.raises(ServiceUnavailableError):
            await sdk.data.inc_hash_value(**INC)
        assert len(fake.received) == 2 and 2.0 <= waits[0] <= 2.5
        assert await sdk.data.get_hash_value("counter", "k", "n") == 5
        assert len(fake.received) == 3
