"""The token endpoint (RFC 6749 §3.2, §4-§6; PROTOCOL §2) end to end."""

from __future__ import annotations

from tests.oauth.conftest import ISSUER, OAuthWorld
from tests.oauth.flows import (
    TOKEN,
    Pkce,
    authorize,
    authorize_params,
    basic_auth,
    exchange,
    get_code,
    refresh,
    tokens_for,
)


async def test_code_flow_issues_the_protocol_token_response(world: OAuthWorld) -> None:
    pkce = Pkce.new()
    query = await authorize(world.http, authorize_params(world.app, pkce))
    assert query["state"] == "xyz-state"
    assert query["iss"] == ISSUER
    response = await exchange(world.http, world.app, query["code"], pkce)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "basic email"
    for key in ("access_token", "refresh_token", "session_key", "session_secret"):
        assert len(body[key]) >= 43, key


async def test_refresh_rotates(world: OAuthWorld) -> None:
    body = await tokens_for(world.http, world.app)
    first = await refresh(world.http, world.app, str(body["refresh_token"]))
    assert first.status_code == 200, first.text
    new = first.json()
    assert new["refresh_token"] != body["refresh_token"]
    assert new["session_key"]
    assert new["scope"] == "basic email"
    second = await refresh(world.http, world.app, new["refresh_token"], scope="basic")
    assert second.status_code == 200
    assert second.json()["scope"] == "basic"


async def test_client_credentials_with_post_auth_has_no_refresh_token_and_no_user(
    world: OAuthWorld,
) -> None:
    response = await world.http.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": world.app.api_key,
            "client_secret": world.app.secret,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert "session_key" not in body
    assert body["scope"] == "basic"
    record = await world.db.tokens.find_access_token(body["access_token"])
    assert record is not None
    assert record.user_id is None


async def test_form_content_type_with_charset_is_accepted(world: OAuthWorld) -> None:
    response = await world.http.post(
        TOKEN,
        content=b"grant_type=client_credentials",
        headers={
            **basic_auth(world.app),
            "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
        },
    )
    assert response.status_code == 200, response.text


async def test_public_client_uses_none_auth_with_pkce(world: OAuthWorld) -> None:
    app = await world.new_app(public=True)
    pkce = Pkce.new()
    code = await get_code(world.http, app, pkce)
    response = await world.http.post(
        TOKEN,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": app.api_key,
            "redirect_uri": "https://client.example/cb",
            "code_verifier": pkce.verifier,
        },
    )
    assert response.status_code == 200, response.text


async def test_password_grant_when_enabled(world: OAuthWorld) -> None:
    app = await world.new_app(grants=["password", "refresh_token"])
    response = await world.http.post(
        TOKEN,
        data={
            "grant_type": "password",
            "username": "alice",
            "password": "correct horse battery staple",
            "scope": "basic",
        },
        headers=basic_auth(app),
    )
    assert response.status_code == 200, response.text
    assert response.json()["refresh_token"]


async def test_password_grant_is_rate_limited_with_headers(world: OAuthWorld) -> None:
    """RFC 6749 §10.10: the password grant shares the login page's guessing
    limits; refusals say when to retry (PROTOCOL §3.3 headers)."""
    app = await world.new_app(grants=["password"])
    statuses = []
    for _ in range(11):
        response = await world.http.post(
            TOKEN,
            data={"grant_type": "password", "username": "alice", "password": "guess"},
            headers=basic_auth(app),
        )
        statuses.append(response.status_code)
        assert "x-ratelimit-remaining" in response.headers
    assert statuses == [400] * 11
    assert response.json()["error_code"] == 10000  # PROTOCOL §2: over a sign-in limit
    assert "too many" in response.json()["error_detail"]
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["x-ratelimit-remaining"] == "0"


async def test_code_redirect_uri_omitted_at_both_ends(world: OAuthWorld) -> None:
    pkce = Pkce.new()
    code = await get_code(world.http, world.app, pkce, redirect_uri="")
    response = await exchange(world.http, world.app, code, pkce, redirect_uri="")
    assert response.status_code == 200, response.text


async def test_suspended_app_cannot_authenticate_or_authorize(world: OAuthWorld) -> None:
    await world.db.apps.update(world.app.id, {"status": "suspended"})
    response = await world.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers=basic_auth(world.app)
    )
    assert response.status_code == 401
    assert response.json()["error_code"] == 10001
    page = await world.http.get(
        "/oauth/2.0/authorize", params=authorize_params(world.app, Pkce.new())
    )
    assert page.status_code == 400
    assert "location" not in page.headers
