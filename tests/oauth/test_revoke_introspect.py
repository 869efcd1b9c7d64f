"""RFC 7009 revocation and RFC 7662 introspection (PROTOCOL §2)."""

from __future__ import annotations

import httpx

from tests.oauth.conftest import ISSUER, USERNAME, OAuthWorld
from tests.oauth.flows import basic_auth, refresh, tokens_for

REVOKE = "/oauth/2.0/revoke"
INTROSPECT = "/oauth/2.0/introspect"


async def introspect(http: httpx.AsyncClient, world: OAuthWorld, token: str) -> dict[str, object]:
    response = await http.post(INTROSPECT, data={"token": token}, headers=basic_auth(world.app))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    return body


async def test_introspection_describes_an_active_token(world: OAuthWorld) -> None:
    body = await tokens_for(world.http, world.app)
    info = await introspect(world.http, world, str(body["access_token"]))
    assert info["active"] is True
    assert info["scope"] == "basic email"
    assert info["client_id"] == world.app.api_key
    assert info["username"] == USERNAME
    assert info["sub"] == str(world.uid)
    assert info["token_type"] == "Bearer"
    assert info["iss"] == ISSUER
    assert isinstance(info["exp"], int)
    assert isinstance(info["iat"], int)
    assert info["exp"] - info["iat"] == 3600
    refresh_info = await introspect(world.http, world, str(body["refresh_token"]))
    assert refresh_info["active"] is True
    assert refresh_info["token_type"] == "refresh_token"


async def test_unknown_or_other_apps_tokens_are_inactive(world: OAuthWorld) -> None:
    body = await tokens_for(world.http, world.app)
    other = await world.new_app()
    response = await world.http.post(
        INTROSPECT, data={"token": body["access_token"]}, headers=basic_auth(other)
    )
    assert response.json() == {"active": False}
    assert await introspect(world.http, world, "no-such-token") == {"active": False}


async def test_introspection_needs_client_authentication(world: OAuthWorld) -> None:
    response = await world.http.post(INTROSPECT, data={"token": "x"})
    assert response.status_code == 400
    assert response.json()["error_code"] == 10001


async def test_revoked_access_token_is_inactive_at_once_in_every_process(
    world: OAuthWorld, second_instance: httpx.AsyncClient
) -> None:
    body = await tokens_for(world.http, world.app)
    token = str(body["access_token"])
    assert (await introspect(second_instance, world, token))["active"] is True
    response = await world.http.post(
        REVOKE,
        data={"token": token, "token_type_hint": "access_token"},
        headers=basic_auth(world.app),
    )
    assert response.status_code == 200
    assert (await introspect(second_instance, world, token))["active"] is False
    session = await world.db.tokens.find_session(str(body["session_key"]))
    assert session is not None
    assert session.revoked
    # The refresh token of the family is not touched by revoking one access token.
    assert (await refresh(world.http, world.app, str(body["refresh_token"]))).status_code == 200


async def test_revoking_a_refresh_token_revokes_its_family(world: OAuthWorld) -> None:
    """RFC 7009 §2.1."""
    body = await tokens_for(world.http, world.app)
    response = await world.http.post(
        REVOKE, data={"token": body["refresh_token"]}, headers=basic_auth(world.app)
    )
    assert response.status_code == 200
    assert (await introspect(world.http, world, str(body["access_token"])))["active"] is False
    again = await refresh(world.http, world.app, str(body["refresh_token"]))
    assert again.json()["error_code"] == 10002


async def test_revocation_answers_200_for_unknown_and_ignores_other_apps_tokens(
    world: OAuthWorld,
) -> None:
    """RFC 7009 §2.2."""
    body = await tokens_for(world.http, world.app)
    other = await world.new_app()
    for token in ("unknown-token", str(body["access_token"])):
        response = await world.http.post(REVOKE, data={"token": token}, headers=basic_auth(other))
        assert response.status_code == 200
    assert (await introspect(world.http, world, str(body["access_token"])))["active"] is True


async def test_refresh_reuse_after_the_grace_period_revokes_the_family(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 9700 §4.14.2: within refresh_reuse_grace_s a rotated token is
    only refused; later its reuse is theft and revokes the whole family."""
    app = await world.new_app(refresh_reuse_grace_s=0)
    body = await tokens_for(world.http, app)
    rotated = await refresh(world.http, app, str(body["refresh_token"]))
    assert rotated.status_code == 200
    stolen = await refresh(world.http, app, str(body["refresh_token"]))
    assert stolen.json()["error_code"] == 10002
    newest = rotated.json()
    after = await refresh(world.http, app, newest["refresh_token"])
    assert after.json()["error_code"] == 10002
    response = await world.http.post(
        INTROSPECT, data={"token": newest["access_token"]}, headers=basic_auth(app)
    )
    assert response.json() == {"active": False}
