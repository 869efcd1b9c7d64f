"""users.* methods (PROTOCOL §4) through HTTP: results and codes 6, 100, 108,
109, 210, 211, 212."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from openplatform.errors import entry
from openplatform.storage.models import AccessToken, RefreshToken, utcnow
from tests.gateway.world import World, add_user, issue

INFO = "users.getInfo"


def assert_error(response: httpx.Response, code: int, detail: str | None = None) -> None:
    body = response.json()
    assert body["error_code"] == code, body
    assert response.status_code == entry(code).http_status
    if detail is not None:
        assert body["error_detail"] == detail


async def test_get_info_in_the_order_of_uids(world: World) -> None:
    carol = await add_user(world.services.database, "carol", display_name="Carol")
    uids = f"{carol.uid},{world.alice.uid},{carol.uid}"
    r = await world.client.call(INFO, {"uids": uids, "fields": "username,display_name"})
    assert r.status_code == 200, r.text
    assert r.json() == [
        {"uid": carol.uid, "username": "carol", "display_name": "Carol"},
        {"uid": world.alice.uid, "username": "alice", "display_name": "Alice"},
        {"uid": carol.uid, "username": "carol", "display_name": "Carol"},
    ]


async def test_get_info_json_array_of_uids_and_default_user(world: World) -> None:
    r = await world.client.bearer(
        INFO, world.alice_basic.access_token, {"uids": f"[{world.alice.uid}]", "fields": "uid"}
    )
    assert r.json() == [{"uid": world.alice.uid}]
    r = await world.client.bearer(INFO, world.alice_basic.access_token, {"fields": "username"})
    assert r.json() == [{"uid": world.alice.uid, "username": "alice"}]


@pytest.mark.parametrize("uids", ["abc", "1,,2", "-3", "0", "99999999"])
async def test_108_malformed_or_unknown_uid(world: World, uids: str) -> None:
    assert_error(await world.client.call(INFO, {"uids": uids, "fields": "uid"}), 108)


async def test_100_more_than_100_uids(world: World) -> None:
    uids = ",".join(str(world.alice.uid) for _ in range(101))
    assert_error(await world.client.call(INFO, {"uids": uids, "fields": "uid"}), 100)


async def test_109_unknown_field(world: World) -> None:
    r = await world.client.call(INFO, {"uids": str(world.alice.uid), "fields": "uid,password"})
    assert_error(r, 109)


async def test_210_private_profile_unless_it_is_the_caller(world: World) -> None:
    r = await world.client.call(INFO, {"uids": str(world.bob.uid), "fields": "username"})
    assert_error(r, 210)
    bob = await issue(world.services.database, world.app, world.bob, "basic")
    r = await world.client.bearer(
        INFO, bob.access_token, {"uids": str(world.bob.uid), "fields": "username"}
    )
    assert r.json() == [{"uid": world.bob.uid, "username": "bob"}]


async def test_212_email_needs_the_email_scope(world: World) -> None:
    params = {"uids": str(world.alice.uid), "fields": "uid,email"}
    assert_error(await world.client.bearer(INFO, world.alice_basic.access_token, params), 212)
    assert_error(await world.client.call(INFO, params), 212)  # app-only call
    r = await world.client.bearer(INFO, world.alice_full.access_token, params)
    assert r.json() == [{"uid": world.alice.uid, "email": "alice@example.com"}]


async def test_211_mobile_needs_the_mobile_scope(world: World) -> None:
    params = {"uids": str(world.alice.uid), "fields": "mobile"}
    r = await world.client.bearer(INFO, world.alice_basic.access_token, params)
    assert_error(r, 211, "mobile")
    r = await world.client.bearer(INFO, world.alice_full.access_token, params)
    assert r.json() == [{"uid": world.alice.uid, "mobile": "+8613800000000"}]


async def test_email_of_another_user_needs_that_user_s_consent(world: World) -> None:
    db = world.services.database
    carol = await add_user(db, "carol", email="carol@example.com")
    params = {"uids": str(carol.uid), "fields": "email"}
    assert_error(await world.client.bearer(INFO, world.alice_full.access_token, params), 212)
    await db.consents.grant(carol.uid, world.app.id, "basic email")
    r = await world.client.bearer(INFO, world.alice_full.access_token, params)
    assert r.json() == [{"uid": carol.uid, "email": "carol@example.com"}]


async def test_get_logged_in_user_and_6_for_app_only(world: World) -> None:
    r = await world.client.bearer("users.getLoggedInUser", world.alice_basic.access_token)
    assert r.json() == {"uid": world.alice.uid}
    assert_error(await world.client.call("users.getLoggedInUser"), 6)


async def test_6_for_client_credentials_token(world: World) -> None:
    db = world.services.database
    grant = await db.tokens.create_grant(world.app.id, None, "basic", "client_credentials")
    issued = await db.tokens.issue(grant, world.app.id, None, "basic", 3600, None, False)
    assert_error(await world.client.bearer("users.getLoggedInUser", issued.access_token), 6)


async def test_has_app_permission(world: World) -> None:
    method = "users.hasAppPermission"
    token = world.alice_basic.access_token
    r = await world.client.bearer(method, token, {"ext_perm": "basic"})
    assert r.json() == {"result": True}
    # alice consented to email in another authorization
    r = await world.client.bearer(method, token, {"ext_perm": "email"})
    assert r.json() == {"result": True}
    r = await world.client.bearer(method, token, {"ext_perm": "data"})
    assert r.json() == {"result": False}
    assert_error(await world.client.bearer(method, token), 100)
    assert_error(await world.client.call(method, {"ext_perm": "basic"}), 6)


async def test_is_app_user(world: World) -> None:
    method = "users.isAppUser"
    r = await world.client.call(method, {"uid": str(world.alice.uid)})
    assert r.json() == {"result": True}
    r = await world.client.call(method, {"uid": str(world.bob.uid)})
    assert r.json() == {"result": False}
    r = await world.client.bearer(method, world.alice_basic.access_token)
    assert r.json() == {"result": True}
    assert_error(await world.client.call(method, {"uid": "x"}), 108)
    assert_error(await world.client.call(method), 100)


async def test_is_app_user_by_consent_not_by_live_tokens(world: World) -> None:
    """PROTOCOL §4: true while the user has authorized the app and not revoked
    it — after every token of theirs expired too."""
    db = world.services.database
    carol = await add_user(db, "carol")
    await issue(db, world.app, carol, "basic", ttl_s=1)
    async with db.sessions.write() as session:  # every token and refresh token expired
        for model in (AccessToken, RefreshToken):
            await session.execute(
                update(model)
                .where(model.user_id == carol.uid)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
    is_user = {"uid": str(carol.uid)}
    assert (await world.client.call("users.isAppUser", is_user)).json() == {"result": True}
    await db.consents.revoke(carol.uid, world.app.id)
    assert (await world.client.call("users.isAppUser", is_user)).json() == {"result": False}


async def test_xml_result(world: World) -> None:
    r = await world.client.call(
        INFO, {"uids": str(world.alice.uid), "fields": "uid,username", "format": "xml"}
    )
    assert r.status_code == 200
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert "<users_getInfo_response><item><uid>" in r.text
