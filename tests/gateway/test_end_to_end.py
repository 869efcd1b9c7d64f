"""The whole platform app: tokens from the OAuth flow (PROTOCOL §2) sign and
authorize open-API calls (§3), including the legacy session key/secret, and
revocation stops them at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.gateway.signature import sign
from openplatform.storage.apps import AppRecord, AppSettings
from tests.oauth.conftest import PASSWORD, REDIRECT_URI, USERNAME, make_services, make_settings
from tests.oauth.flows import basic_auth, tokens_for


@dataclass
class Platform:
    http: httpx.AsyncClient
    app: AppRecord
    uid: int


@pytest.fixture
async def platform(database_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    settings = make_settings(database_url, tmp_path)
    services = make_services(settings)
    try:
        app = await services.database.apps.create(
            AppSettings.from_mapping(
                {"name": "E2E", "redirect_uris": [REDIRECT_URI], "scopes": ["basic", "email"]}
            )
        )
        user = await services.database.users.create(USERNAME, PASSWORD, email="a@example.com")
        transport = httpx.ASGITransport(app=create_app(settings, services))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Platform(http, app, user.uid)
    finally:
        await services.close()


async def test_session_key_signs_and_access_token_authorizes(platform: Platform) -> None:
    tokens = await tokens_for(platform.http, platform.app)
    session_key, session_secret = str(tokens["session_key"]), str(tokens["session_secret"])
    params = {
        "api_key": platform.app.api_key,
        "session_key": session_key,
        "timestamp": str(int(time.time())),
        "call_id": str(time.time_ns()),
    }
    params["sig"] = sign([*params.items(), ("method", "users.getLoggedInUser")], session_secret)
    r = await platform.http.post("/rest/2.0/users.getLoggedInUser", data=params)
    assert r.status_code == 200, r.text
    assert r.json() == {"uid": platform.uid}
    assert r.headers["X-Request-Id"]

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    r = await platform.http.post(
        "/rest/2.0/users.getInfo", data={"fields": "username,email"}, headers=bearer
    )
    assert r.json() == [{"uid": platform.uid, "username": USERNAME, "email": "a@example.com"}]

    revoked = await platform.http.post(
        "/oauth/2.0/revoke",
        data={"token": str(tokens["access_token"])},
        headers=basic_auth(platform.app),
    )
    assert revoked.status_code == 200
    r = await platform.http.post("/rest/2.0/users.getLoggedInUser", headers=bearer)
    assert r.json()["error_code"] == 110
    params["call_id"] = str(time.time_ns())
    params["sig"] = sign(
        [*(p for p in params.items() if p[0] != "sig"), ("method", "users.getLoggedInUser")],
        session_secret,
    )
    r = await platform.http.post("/rest/2.0/users.getLoggedInUser", data=params)
    assert r.json()["error_code"] == 102  # the session died with its token
