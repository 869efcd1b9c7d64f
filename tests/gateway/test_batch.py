"""batch.run (PROTOCOL §4 batch) through the gateway: one authentication and
one shared-state step for the whole feed, items answered in order, each with
its own permission check and rate limits; 952, 953 and 100 before anything
runs; JSON and XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import httpx
import pytest

from openplatform.cache import CallCheck, CallVerdict
from openplatform.errors import entry
from tests.gateway.world import World

BATCH = "batch.run"


def feed(*calls: dict[str, str]) -> str:
    return json.dumps([urlencode(call) for call in calls])


def items(response: httpx.Response) -> list[dict[str, object]]:
    assert response.status_code == 200, response.text
    body: list[dict[str, object]] = response.json()
    return body


def error_of(response: httpx.Response, code: int) -> dict[str, object]:
    body: dict[str, object] = response.json()
    assert body["error_code"] == code, body
    assert response.status_code == entry(code).http_status
    return body


async def test_items_answer_in_order_each_with_its_result_or_error(world: World) -> None:
    alice = str(world.alice.uid)
    response = await world.client.call(
        BATCH,
        {
            "method_feed": feed(
                {"method": "users.getInfo", "uids": alice, "fields": "username"},
                {"method": "users.getInfo", "uids": "nope", "fields": "uid"},
                {"method": "no.such", "x": "1"},
                {"method": "application.getPublicInfo", "application_id": str(world.app.id)},
                {"method": "users.getLoggedInUser"},
                {"method": "users.getInfo", "uids": alice, "uids ": "x", "fields": "uid"},
            ),
            "access_token": world.alice_basic.access_token,
        },
    )
    answers = items(response)
    assert answers[0] == {
        "error_code": 0,
        "result": [{"uid": world.alice.uid, "username": "alice"}],
    }
    assert answers[1]["error_code"] == 108
    assert answers[1]["error_msg"] == entry(108).message("en")
    assert answers[2]["error_code"] == 3
    assert answers[3]["error_code"] == 0
    assert answers[3]["result"]["name"] == "Gateway test app"  # type: ignore[index]
    assert answers[4] == {"error_code": 0, "result": {"uid": world.alice.uid}}  # the outer user's
    assert answers[5]["error_code"] == 0
    assert len(answers) == 6


async def test_items_are_permission_checked_with_the_batch_credential(world: World) -> None:
    """An app-only batch: an item that needs a user is that item's 6."""
    answers = items(
        await world.client.call(
            BATCH,
            {
                "method_feed": feed(
                    {"method": "users.getLoggedInUser"},
                    {"method": "application.getPublicInfo", "application_id": str(world.app.id)},
                )
            },
        )
    )
    assert [a["error_code"] for a in answers] == [6, 0]


async def test_952_over_20_items(world: World) -> None:
    calls = [{"method": "users.getLoggedInUser"}] * 21
    error_of(await world.client.call(BATCH, {"method_feed": feed(*calls)}), 952)
    assert items(await world.client.call(BATCH, {"method_feed": feed(*calls[:20])}))


@pytest.mark.parametrize("method", [BATCH, "test.unbatchable"])
async def test_953_not_batchable(world: World, method: str) -> None:
    calls = [{"method": "users.getLoggedInUser"}, {"method": method, "method_feed": "[]"}]
    error_of(await world.client.call(BATCH, {"method_feed": feed(*calls)}), 953)


@pytest.mark.parametrize(
    "method_feed",
    [
        "not json",
        '{"method": "users.getInfo"}',
        "[1, 2]",
        '["uids=1"]',
        '["method="]',
        '["method=users.getInfo&method=users.getInfo"]',
        json.dumps(["method=users.getLoggedInUser&sig=abc"]),
        json.dumps(["method=users.getLoggedInUser&access_token=t"]),
        json.dumps(["method=users.getLoggedInUser&api_key=k"]),
        json.dumps(["method=users.getInfo&uids=%ZZ"]),
    ],
)
async def test_100_malformed_feed_before_anything_runs(world: World, method_feed: str) -> None:
    checks: list[CallCheck] = []
    original = world.services.shared_state.check_call

    async def counting(check: CallCheck) -> CallVerdict:
        checks.append(check)
        return await original(check)

    world.services.shared_state.check_call = counting  # type: ignore[method-assign]
    body = error_of(await world.client.call(BATCH, {"method_feed": method_feed}), 100)
    assert body["error_detail"]
    assert checks == []  # refused before the shared-state step: nothing consumed


async def test_the_whole_batch_is_one_shared_state_step(world: World) -> None:
    checks: list[CallCheck] = []
    original = world.services.shared_state.check_call

    async def counting(check: CallCheck) -> CallVerdict:
        checks.append(check)
        return await original(check)

    world.services.shared_state.check_call = counting  # type: ignore[method-assign]
    calls = [{"method": "users.getLoggedInUser"}] * 20
    answers = items(
        await world.client.call(
            BATCH,
            {"method_feed": feed(*calls), "access_token": world.alice_basic.access_token},
        )
    )
    assert [a["error_code"] for a in answers] == [0] * 20
    assert len(checks) == 1
    assert len(checks[0].batch) == 20


async def test_items_are_rate_limited_each(world: World) -> None:
    await world.configure(
        rate_limits=[
            {"methods": "users.getInfo", "per": "app", "limit": 2, "window_s": 3600},
            {"methods": "*", "per": "app", "limit": 1000, "window_s": 3600},
        ]
    )
    alice = str(world.alice.uid)
    info = {"method": "users.getInfo", "uids": alice, "fields": "uid"}
    other = {"method": "application.getPublicInfo", "application_id": str(world.app.id)}
    response = await world.client.call(BATCH, {"method_feed": feed(info, other, info, info, info)})
    answers = items(response)
    assert [a["error_code"] for a in answers] == [0, 0, 0, 4, 4]
    assert "retry in" in str(answers[3]["error_detail"])
    # the refused items took nothing; the batch call itself was let through
    alone = await world.client.call(
        "users.getInfo", {"uids": str(world.alice.uid), "fields": "uid"}
    )
    assert alone.json()["error_code"] == 4


async def test_serial_only_runs_items_in_feed_order(world: World) -> None:
    tokens = await world.issue(world.alice, "basic data")
    calls = []
    for value in ("first", "second", "third"):
        calls.append({"method": "data.setUserPreference", "pref_id": "7", "value": value})
        calls.append({"method": "data.getUserPreference", "pref_id": "7"})
    answers = items(
        await world.client.call(
            BATCH,
            {
                "method_feed": feed(*calls),
                "serial_only": "true",
                "access_token": tokens.access_token,
            },
        )
    )
    assert [a["result"] for a in answers[1::2]] == [
        {"value": "first"},
        {"value": "second"},
        {"value": "third"},
    ]


async def test_xml(world: World) -> None:
    response = await world.client.call(
        BATCH,
        {
            "method_feed": feed(
                {"method": "application.getPublicInfo", "application_id": str(world.app.id)},
                {"method": "no.such"},
            ),
            "format": "xml",
        },
    )
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.tag == "batch_run_response"
    first, second = root.findall("item")
    assert first.findtext("error_code") == "0"
    assert first.findtext("result/name") == "Gateway test app"
    assert second.findtext("error_code") == "3"
    assert second.findtext("error_msg") == entry(3).message("en")


async def test_a_refused_batch_runs_nothing(world: World) -> None:
    tokens = await world.issue(world.alice, "basic data")
    call = {"method": "data.setUserPreference", "pref_id": "9", "value": "written"}
    params = {"method_feed": feed(call), "access_token": tokens.access_token}
    error_of(await world.client.call(BATCH, params, secret="not the secret"), 104)
    get = {"pref_id": "9", "access_token": tokens.access_token}
    assert (await world.client.call("data.getUserPreference", get)).json() == {"value": ""}
