"""application.getPublicInfo (PROTOCOL §4), including 900."""

from __future__ import annotations

from openplatform.storage.apps import AppSettings
from tests.gateway.world import World

METHOD = "application.getPublicInfo"


async def test_by_id_and_by_api_key(world: World) -> None:
    expected = {
        "app_id": world.app.id,
        "api_key": world.app.api_key,
        "name": "Gateway test app",
        "description": "",
        "icon_url": "",
    }
    r = await world.client.call(METHOD, {"application_id": str(world.app.id)})
    assert r.json() == expected
    r = await world.client.bearer(
        METHOD, world.alice_basic.access_token, {"application_api_key": world.app.api_key}
    )
    assert r.json() == expected


async def test_900_for_unknown_suspended_or_mismatched_apps(world: World) -> None:
    db = world.services.database
    other = await db.apps.create(AppSettings(name="other", status="suspended"))
    for params in (
        {"application_id": "999999"},
        {"application_api_key": "ak_nope"},
        {"application_id": str(other.id)},
        {"application_id": str(world.app.id), "application_api_key": other.api_key},
    ):
        r = await world.client.call(METHOD, params)
        assert r.json()["error_code"] == 900, params
        assert r.status_code == 404


async def test_100_without_either_parameter(world: World) -> None:
    r = await world.client.call(METHOD)
    assert r.json()["error_code"] == 100
    r = await world.client.call(METHOD, {"application_id": "abc"})
    assert r.json()["error_code"] == 100
