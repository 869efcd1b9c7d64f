"""One test per OAuth error code 10000-10009 (PROTOCOL §1, §2), each named
after the rule it checks."""

from __future__ import annotations

import base64
from datetime import timedelta

from sqlalchemy import update

from openplatform.storage.crypto import hash_token
from openplatform.storage.models import RefreshToken, utcnow
from tests.oauth.browser import query_of
from tests.oauth.conftest import ISSUER, REDIRECT_URI, OAuthWorld
from tests.oauth.flows import (
    AUTHORIZE,
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


def assert_oauth_error(response: object, code: int, error: str, status: int = 400) -> None:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert body["error_code"] == code
    assert body["error_description"]


async def test_10000_duplicated_or_missing_parameter_is_invalid_request(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 6749 §3.2: missing, duplicated or malformed parameters
    are 10000; at /authorize they are redirected with state and iss."""
    response = await world.http.post(
        TOKEN,
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={**basic_auth(world.app), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, 10000, "invalid_request")
    response = await world.http.post(TOKEN, data={"code": "x"}, headers=basic_auth(world.app))
    assert_oauth_error(response, 10000, "invalid_request")
    response = await world.http.post(TOKEN, json={"grant_type": "client_credentials"})
    assert_oauth_error(response, 10000, "invalid_request")
    params = authorize_params(world.app, Pkce.new(), response_type="")
    redirect = await world.http.get(AUTHORIZE, params=params)
    assert redirect.status_code == 302
    query = query_of(redirect.headers["location"])
    assert query["error_code"] == "10000"
    assert query["state"] == "xyz-state"
    assert query["iss"] == ISSUER


async def test_10001_failed_client_authentication_is_invalid_client(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 6749 §5.2: a wrong secret is 10001, with HTTP Basic 401 and
    WWW-Authenticate; an unknown client_id at /authorize is an error page, never a
    redirect."""
    bad = base64.b64encode(f"{world.app.api_key}:wrong".encode()).decode()
    response = await world.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {bad}"}
    )
    assert_oauth_error(response, 10001, "invalid_client", status=401)
    assert response.headers["www-authenticate"] == 'Basic realm="openplatform"'
    response = await world.http.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": world.app.api_key,
            "client_secret": "wrong",
        },
    )
    assert_oauth_error(response, 10001, "invalid_client", status=400)
    page = await world.http.get(
        AUTHORIZE,
        params={"response_type": "code", "client_id": "ak_nobody", "redirect_uri": REDIRECT_URI},
    )
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "10001" in page.text


async def test_10002_second_use_of_a_code_revokes_what_it_issued(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 6749 §4.1.2: a code is single use; the second use is
    10002 and revokes every token and session key issued from it."""
    pkce = Pkce.new()
    code = await get_code(world.http, world.app, pkce)
    first = await exchange(world.http, world.app, code, pkce)
    assert first.status_code == 200
    second = await exchange(world.http, world.app, code, pkce)
    assert_oauth_error(second, 10002, "invalid_grant")
    issued = first.json()
    token = await world.db.tokens.find_access_token(issued["access_token"])
    assert token is not None
    assert token.revoked
    session = await world.db.tokens.find_session(issued["session_key"])
    assert session is not None
    assert session.revoked
    again = await refresh(world.http, world.app, issued["refresh_token"])
    assert_oauth_error(again, 10002, "invalid_grant")


async def test_10002_wrong_or_missing_code_verifier_is_invalid_grant(world: OAuthWorld) -> None:
    """RFC 7636 §4.6: a missing or wrong code_verifier is 10002, and the code
    stays usable by the client holding the right verifier."""
    pkce = Pkce.new()
    code = await get_code(world.http, world.app, pkce)
    wrong = await exchange(world.http, world.app, code, Pkce.new())
    assert_oauth_error(wrong, 10002, "invalid_grant")
    missing = await exchange(world.http, world.app, code, pkce, code_verifier="")
    assert_oauth_error(missing, 10002, "invalid_grant")
    right = await exchange(world.http, world.app, code, pkce)
    assert right.status_code == 200


async def test_10003_grant_not_enabled_for_the_app_is_unauthorized_client(
    world: OAuthWorld,
) -> None:
    """PROTOCOL §2, §5: the password grant is off unless enabled per app → 10003."""
    response = await world.http.post(
        TOKEN,
        data={"grant_type": "password", "username": "alice", "password": "x"},
        headers=basic_auth(world.app),
    )
    assert_oauth_error(response, 10003, "unauthorized_client")


async def test_10004_unknown_grant_type_is_unsupported_grant_type(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 6749 §5.2: no implicit, no unknown grant types → 10004."""
    for grant_type in ("implicit", "urn:ietf:params:oauth:grant-type:device_code"):
        response = await world.http.post(
            TOKEN, data={"grant_type": grant_type}, headers=basic_auth(world.app)
        )
        assert_oauth_error(response, 10004, "unsupported_grant_type")


async def test_10005_scope_the_app_may_not_request_is_invalid_scope(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 6749 §3.3: a scope outside the app's scopes → 10005, at
    the token endpoint and (redirected) at /authorize."""
    response = await world.http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "basic mobile"},
        headers=basic_auth(world.app),
    )
    assert_oauth_error(response, 10005, "invalid_scope")
    redirect = await world.http.get(
        AUTHORIZE, params=authorize_params(world.app, Pkce.new(), scope="mobile")
    )
    query = query_of(redirect.headers["location"])
    assert (query["error"], query["error_code"]) == ("invalid_scope", "10005")


async def test_10006_expired_refresh_token_is_expired_token(world: OAuthWorld) -> None:
    """PROTOCOL §2: an expired refresh token is expired_token / 10006."""
    body = await tokens_for(world.http, world.app)
    refresh_token = str(body["refresh_token"])
    async with world.db.sessions.write() as session:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == hash_token(refresh_token))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await refresh(world.http, world.app, refresh_token)
    assert_oauth_error(response, 10006, "expired_token")


async def test_10007_unregistered_or_changed_redirect_uri_is_redirect_uri_mismatch(
    world: OAuthWorld,
) -> None:
    """PROTOCOL §2 / RFC 6749 §4.1.2.1, §4.1.3: an unregistered redirect_uri is an
    error page (400, no redirect); at the token endpoint a redirect_uri that
    differs from /authorize (or is omitted) is 10007."""
    params = authorize_params(world.app, Pkce.new(), redirect_uri="https://evil.example/cb")
    page = await world.http.get(AUTHORIZE, params=params)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "10007" in page.text
    pkce = Pkce.new()
    code = await get_code(world.http, world.app, pkce)
    for given in ("https://client.example/other", ""):
        response = await exchange(world.http, world.app, code, pkce, redirect_uri=given)
        assert_oauth_error(response, 10007, "redirect_uri_mismatch")


async def test_10008_response_type_other_than_code_is_unsupported_response_type(
    world: OAuthWorld,
) -> None:
    """PROTOCOL §2 / RFC 9700 §2.1.2: no implicit grant; response_type=token is
    redirected back as 10008."""
    params = authorize_params(world.app, Pkce.new(), response_type="token")
    redirect = await world.http.get(AUTHORIZE, params=params)
    assert redirect.status_code == 302
    query = query_of(redirect.headers["location"])
    assert (query["error"], query["error_code"]) == ("unsupported_response_type", "10008")
    assert "access_token" not in redirect.headers["location"]


async def test_10009_user_denies_consent_is_access_denied(world: OAuthWorld) -> None:
    """PROTOCOL §2 / RFC 6749 §4.1.2.1: the user denies → redirected with
    access_denied / 10009, state and iss; no code."""
    query = await authorize(world.http, authorize_params(world.app, Pkce.new()), approve=False)
    assert query["error"] == "access_denied"
    assert query["error_code"] == "10009"
    assert query["error_description"] == "Access denied"
    assert query["state"] == "xyz-state"
    assert query["iss"] == ISSUER
    assert "code" not in query
