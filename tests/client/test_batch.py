"""Batches (PROTOCOL §4): the SDK's own rules 950/951/952/953, and sending
through ``batch.run`` against a fake gateway that answers per PROTOCOL (the
server's ``batch.run`` is not there yet)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import httpx
import pytest

from openplatform_client import (
    AsyncClient,
    Batch,
    BatchError,
    Client,
    InvalidParameterError,
    ObjectNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UserInfo,
)
from tests.client.fake_gateway import (
    API_KEY,
    BASE_URL,
    SECRET,
    FakeGateway,
    Received,
    answer,
    batch_script,
    error,
)


def item_answer(method: str, params: dict[str, str]) -> dict[str, object]:
    if method == "users.getInfo":
        uids = [int(uid) for uid in params["uids"].split(",")]
        if 2 in uids:
            return {"error_code": 210, "error_msg": "User not visible"}
        return {"error_code": 0, "result": [{"uid": uid, "username": f"u{uid}"} for uid in uids]}
    if method == "data.incHashValue":
        return {"error_code": 0, "result": {"value": int(params["increment"])}}
    if method == "data.getObject":
        return {"error_code": 803, "error_msg": "Specified object cannot be found"}
    return {"error_code": 3, "error_msg": "Unsupported openapi method"}


def sdk(fake: FakeGateway, **options: object) -> Client:
    return Client(
        API_KEY,
        SECRET,
        base_url=BASE_URL,
        http_client=httpx.Client(transport=fake.transport()),
        sleep=lambda _: None,
        **options,  # type: ignore[arg-type]
    )


def test_begin_batch_twice_is_950_and_end_without_begin_is_951() -> None:
    client = Client(API_KEY, SECRET, base_url=BASE_URL)
    client.begin_batch()
    with pytest.raises(BatchError) as twice:
        client.begin_batch()
    assert twice.value.code == 950
    assert twice.value.message_en.startswith("begin_batch already called")
    assert twice.value.message_zh.startswith("批量操作已开始")
    client.end_batch()  # empty: nothing is sent
    with pytest.raises(BatchError) as unopened:
        client.end_batch()
    assert unopened.value.code == 951
    with pytest.raises(BatchError) as nested, client.batch(), client.batch():
        pass
    assert nested.value.code == 950
    # the failed block closed its batch: a new one opens
    client.begin_batch()


def test_a_21st_item_is_952_before_anything_is_sent() -> None:
    fake = FakeGateway(script=batch_script(item_answer))
    client = sdk(fake)

    def queue_21() -> Batch:
        with client.batch() as batch:
            for uid in range(1, 22):
                batch.users.get_info(uids=[uid])
        return batch

    opened: list[Batch] = []
    with pytest.raises(BatchError) as caught:
        opened.append(queue_21())
    assert opened == []  # the 21st raised
    assert caught.value.code == 952
    assert caught.value.message_en == "Each batch API can not contain more than 20 items"
    assert fake.received == []  # the block raised: the batch was abandoned, nothing sent
    abandoned = client.begin_batch()  # and the client's batch slot is free again
    client.end_batch()
    assert len(abandoned) == 0
    with client.batch() as full:
        for uid in range(3, 23):
            full.users.get_info(uids=[uid])
    assert len(fake.received) == 1
    assert [item.result()[0].uid for item in full.items] == list(range(3, 23))  # type: ignore[index, attr-defined]


def test_batch_run_cannot_be_queued_953() -> None:
    with pytest.raises(BatchError) as caught:
        Batch().call("batch.run", method_feed="[]")
    assert caught.value.code == 953


def test_items_resolve_in_feed_order_with_their_own_errors() -> None:
    fake = FakeGateway(script=batch_script(item_answer))
    client = sdk(fake)
    with client.batch(serial_only=True) as batch:
        users = batch.users.get_info(uids=[1, 3], fields=["username"])
        hidden = batch.users.get_info(uids=[2])
        counter = batch.data.inc_hash_value("counter", "k", "n", increment=5)
        missing = batch.data.get_object(42)
        raw = batch.call("users.getInfo", uids=[4])
        assert not users.done()
    assert users.result() == [UserInfo(uid=1, username="u1"), UserInfo(uid=3, username="u3")]
    with pytest.raises(PermissionDeniedError) as not_visible:
        hidden.result()
    assert not_visible.value.code == 210 and not_visible.value.request_id == "req-ok"
    assert not_visible.value.message_zh == "用户不可见"
    assert counter.result() == 5
    assert isinstance(missing.exception(), ObjectNotFoundError)
    assert raw.result() == [{"uid": 4, "username": "u4"}]
    assert [type(e).__name__ for e in batch.errors()] == [
        "PermissionDeniedError",
        "ObjectNotFoundError",
    ]
    # one signed request; items are bare query strings
    (sent,) = fake.received
    assert sent.method == "batch.run" and "sig" in sent.params
    assert sent.params["serial_only"] == "true"
    feed = json.loads(sent.params["method_feed"])
    assert [dict(parse_qsl(entry)) for entry in feed] == [
        {"method": "users.getInfo", "uids": "1,3", "fields": "username"},
        {"method": "users.getInfo", "uids": "2"},
        {"method": "data.incHashValue", "obj_type": "counter", "key": "k", "prop_name": "n",
         "increment": "5"},
        {"method": "data.getObject", "obj_id": "42"},
        {"method": "users.getInfo", "uids": "4"},
    ]  # fmt: skip


def test_begin_and_end_batch() -> None:
    fake = FakeGateway(script=batch_script(item_answer))
    client = sdk(fake)
    batch = client.begin_batch()
    first = batch.users.get_info(uids=[7])
    assert client.end_batch() is batch
    assert first.result()[0].uid == 7
    assert fake.received[0].params["serial_only"] == "false"


def test_an_error_of_the_whole_batch_fails_every_item() -> None:
    fake = FakeGateway([error(100, detail="method_feed is not a JSON array")])
    client = sdk(fake)
    with pytest.raises(InvalidParameterError), client.batch() as batch:
        item = batch.users.get_info(uids=[1])
    with pytest.raises(InvalidParameterError):
        item.result()


def test_a_batch_is_resent_only_when_every_item_is_idempotent() -> None:
    fake = FakeGateway(
        script=lambda r: error(2) if len(fake.received) == 1 else batch_script(item_answer)(r)
    )
    with sdk(fake).batch() as reads:
        item = reads.users.get_info(uids=[1])
    assert len(fake.received) == 2 and item.result()[0].uid == 1
    fake2 = FakeGateway([error(2)])
    writer = sdk(fake2)
    writes = writer.begin_batch()
    writes.users.get_info(uids=[1])
    writes.data.inc_hash_value("counter", "k", "n")
    with pytest.raises(ServiceUnavailableError):
        writer.end_batch()
    assert len(fake2.received) == 1


def test_a_rate_limited_batch_is_resent() -> None:
    calls: list[Received] = []

    def script(received: Received) -> httpx.Response:
        calls.append(received)
        if len(calls) == 1:
            return error(4, retry_after="1")
        return batch_script(item_answer)(received)

    fake = FakeGateway(script=script)
    with sdk(fake).batch() as batch:
        item = batch.data.inc_hash_value("counter", "k", "n", increment=2)
    assert item.result() == 2 and len(calls) == 2


def test_per_item_rate_limits_are_the_items_errors() -> None:
    fake = FakeGateway(
        script=lambda r: answer([{"error_code": 4, "error_msg": "Open api request limit reached"}])
    )
    with sdk(fake).batch() as batch:
        item = batch.users.get_info(uids=[1])
    assert isinstance(item.exception(), RateLimitError)
    assert len(fake.received) == 1


async def test_async_batch() -> None:
    fake = FakeGateway(script=batch_script(item_answer))
    async with AsyncClient(
        API_KEY,
        SECRET,
        base_url=BASE_URL,
        http_client=httpx.AsyncClient(transport=fake.async_transport()),
    ) as client:
        async with client.batch() as batch:
            users = batch.users.get_info(uids=[5])
            counter = batch.data.inc_hash_value("c", "k", "n", increment=3)
        assert users.result()[0].uid == 5 and counter.result() == 3
        client.begin_batch()
        with pytest.raises(BatchError) as twice:
            client.begin_batch()
        assert twice.value.code == 950
        await client.end_batch()
        with pytest.raises(BatchError) as unopened:
            await client.end_batch()
        assert unopened.value.code == 951
