"""PROTOCOL §5 as end users and apps meet it: disabling a user kills every
credential they hold at once, in every server process, for good; a password
change ends their browser sessions; second-long token lifetimes expire."""

from __future__ import annotations

import asyncio
import time

import httpx

from openplatform.gateway.signature import sign
from tests.oauth.browser import find_form
from tests.oauth.conftest import PASSWORD, USERNAME, OAuthWorld
from tests.oauth.flows import (
    AUTHORIZE,
    TOKEN,
    Pkce,
    authorize_params,
    basic_auth,
    exchange,
    get_code,
    refresh,
    tokens_for,
)

ME = "/rest/2.0/users.getLoggedInUser"


async def admin_patch_user(world: OAuthWorld, patch: dict[str, object]) -> None:
    token = await world.db.admin_tokens.create("tests")
    response = await world.http.patch(
        f"/admin/api/users/{world.uid}", json=patch, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


async def as_user(http: httpx.AsyncClient, access_token: str) -> int:
    response = await http.post(ME, headers={"Authorization": f"Bearer {access_token}"})
    return int(response.headers["X-Error-Code"])


async def with_session_key(
    http: httpx.AsyncClient, api_key: str, session_key: str, session_secret: str
) -> int:
    params = {"api_key": api_key, "session_key": session_key, "timestamp": str(int(time.time()))}
    params["call_id"] = str(time.time_ns())  # each call distinct: the processes share replay state
    params["sig"] = sign([*params.items(), ("method", "users.getLoggedInUser")], session_secret)
    response = await http.post(ME, data=params)
    return int(response.headers["X-Error-Code"])


async def introspect(world: OAuthWorld, token: str) -> bool:
    response = await world.http.post(
        "/oauth/2.0/introspect", data={"token": token}, headers=basic_auth(world.app)
    )
    active: bool = response.json()["active"]
    return active


async def sign_in(http: httpx.AsyncClient, world: OAuthWorld, password: str) -> httpx.Response:
    page = await http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    form = find_form(page.text)
    return await http.post(form.action, data=dict(form.data(username=USERNAME, password=password)))


async def test_a_disabled_user_loses_every_credential_in_every_process(
    world: OAuthWorld, second_instance: httpx.AsyncClient
) -> None:
    held = await tokens_for(world.http, world.app)
    access, refresh_token = str(held["access_token"]), str(held["refresh_token"])
    session_key, session_secret = str(held["session_key"]), str(held["session_secret"])
    pkce = Pkce.new()
    code = await get_code(world.http, world.app, pkce)  # issued, not yet redeemed
    for http in (world.http, second_instance):
        assert await as_user(http, access) == 0
        assert await with_session_key(http, world.app.api_key, session_key, session_secret) == 0

    await admin_patch_user(world, {"disabled": True})

    for http in (world.http, second_instance):
        assert await as_user(http, access) == 110
        assert await with_session_key(http, world.app.api_key, session_key, session_secret) == 102
    assert not await introspect(world, access)
    assert not await introspect(world, refresh_token)
    refused = await refresh(second_instance, world.app, refresh_token)
    assert refused.json()["error_code"] == 10002
    redeemed = await exchange(second_instance, world.app, code, pkce)
    assert redeemed.json()["error_code"] == 10002
    world.http.cookies.clear()
    assert (await sign_in(world.http, world, PASSWORD)).status_code == 401
    password_app = await world.new_app(grants=["password"])
    grant = await world.http.post(
        TOKEN,
        data={"grant_type": "password", "username": USERNAME, "password": PASSWORD},
        headers=basic_auth(password_app),
    )
    assert grant.json()["error_code"] == 10002

    # Enabling them again brings none of the old credentials back.
    await admin_patch_user(world, {"disabled": False})
    assert await as_user(second_instance, access) == 110
    assert await with_session_key(world.http, world.app.api_key, session_key, session_secret) == 102
    assert (await refresh(world.http, world.app, refresh_token)).json()["error_code"] == 10002
    assert not await introspect(world, access)
    fresh = await tokens_for(world.http, world.app)  # and they can sign in anew
    assert await as_user(second_instance, str(fresh["access_token"])) == 0


async def test_disabling_ends_the_browser_session_for_good(world: OAuthWorld) -> None:
    consent = await sign_in(world.http, world, PASSWORD)
    assert consent.status_code == 200
    assert "op_session" in consent.headers["set-cookie"]
    await admin_patch_user(world, {"disabled": True})
    await admin_patch_user(world, {"disabled": False})
    page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    assert ("action", "login") in find_form(page.text).fields  # asked to sign in again


async def test_a_password_change_ends_browser_sessions_but_not_app_tokens(
    world: OAuthWorld, second_instance: httpx.AsyncClient
) -> None:
    held = await tokens_for(world.http, world.app)  # world.http is signed in now
    page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    assert page.status_code == 302  # signed in, consent remembered: straight back with a code
    await admin_patch_user(world, {"password": "a brand new passphrase"})
    for http in (world.http, second_instance):
        http.cookies.update(world.http.cookies)
        page = await http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
        assert ("action", "login") in find_form(page.text).fields
    assert await as_user(second_instance, str(held["access_token"])) == 0
    assert (await sign_in(world.http, world, PASSWORD)).status_code == 401
    assert (await sign_in(world.http, world, "a brand new passphrase")).status_code == 303


async def test_one_second_access_tokens_expire(world: OAuthWorld) -> None:
    app = await world.new_app(access_token_ttl_s=1)
    held = await tokens_for(world.http, app)
    assert held["expires_in"] == 1
    access = str(held["access_token"])
    assert await as_user(world.http, access) == 0
    await asyncio.sleep(2)
    assert await as_user(world.http, access) == 111
    response = await world.http.post(
        "/oauth/2.0/introspect", data={"token": access}, headers=basic_auth(app)
    )
    assert response.json() == {"active": False}


async def test_one_second_refresh_tokens_expire(world: OAuthWorld) -> None:
    app = await world.new_app(refresh_token_ttl_s=1)
    held = await tokens_for(world.http, app)
    await asyncio.sleep(2)
    expired = await refresh(world.http, app, str(held["refresh_token"]))
    assert expired.status_code == 400
    assert expired.json()["error_code"] == 10006
