"""Interop with unmodified third-party client libraries against a real HTTP
server: requests-oauthlib, Authlib's client, requests-oauth2client. The
authorize step is driven over HTTP like a browser (sign in, approve)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from requests.auth import HTTPBasicAuth
from requests_oauth2client import OAuth2Client
from requests_oauthlib import OAuth2Session

from tests.oauth.conftest import REDIRECT_URI
from tests.oauth.live_server import LiveServer, live_server, sign_in_and_approve

AUTHORIZE = "/oauth/2.0/authorize"
TOKEN = "/oauth/2.0/token"
INTROSPECT = "/oauth/2.0/introspect"


@pytest.fixture
def server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    # The test server speaks plain HTTP on 127.0.0.1; the libraries insist on
    # HTTPS unless told this is a test.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")
    with live_server(database_url, tmp_path) as live:
        yield live


def test_requests_oauthlib_code_flow_with_pkce_and_refresh(server: LiveServer) -> None:
    app = server.app
    client = OAuth2Session(
        app.api_key, redirect_uri=REDIRECT_URI, scope=["basic", "email"], pkce="S256"
    )
    authorize_url, _state = client.authorization_url(server.url(AUTHORIZE))
    callback = sign_in_and_approve(requests.Session(), authorize_url)
    token = client.fetch_token(
        server.url(TOKEN), authorization_response=callback, client_secret=app.secret
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == ["basic", "email"]
    assert token["session_key"]
    refreshed = client.refresh_token(server.url(TOKEN), auth=HTTPBasicAuth(app.api_key, app.secret))
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials(server: LiveServer, method: str) -> None:
    app = server.app
    with AuthlibSession(
        app.api_key, app.secret, token_endpoint_auth_method=method, scope="basic"
    ) as client:
        token = client.fetch_token(server.url(TOKEN), grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert "refresh_token" not in token
        info = client.introspect_token(
            server.url("/oauth/2.0/introspect"), token=token["access_token"]
        )
        assert info.json()["active"] is True
        client.revoke_token(server.url("/oauth/2.0/revoke"), token=token["access_token"])
        info = client.introspect_token(
            server.url("/oauth/2.0/introspect"), token=token["access_token"]
        )
        assert info.json() == {"active": False}


def test_authlib_client_reports_a_wrong_secret(server: LiveServer) -> None:
    with (
        AuthlibSession(
            server.app.api_key, "wrong", token_endpoint_auth_method="client_secret_basic"
        ) as client,
        pytest.raises(Exception, match="invalid_client"),
    ):
        client.fetch_token(server.url(TOKEN), grant_type="client_credentials")


def test_requests_oauth2client_discovery_code_flow_refresh_revoke(server: LiveServer) -> None:
    app = server.app
    client = OAuth2Client.from_discovery_endpoint(
        server.url("/.well-known/oauth-authorization-server"),
        issuer=server.issuer,
        client_id=app.api_key,
        client_secret=app.secret,
        redirect_uri=REDIRECT_URI,
        testing=True,  # plain-HTTP issuer on 127.0.0.1
    )
    request = client.authorization_request(scope="basic email")
    callback = sign_in_and_approve(requests.Session(), str(request.uri))
    response = request.validate_callback(callback)  # checks state and RFC 9207 iss
    token = client.authorization_code(response)
    assert token.refresh_token
    refreshed = client.refresh_token(token.refresh_token)
    assert refreshed.access_token != token.access_token
    cc = client.client_credentials(scope="basic")
    assert cc.access_token
    assert client.introspect_token(refreshed.access_token)["active"] is True
    client.revoke_access_token(refreshed.access_token)
    assert client.introspect_token(refreshed.access_token)["active"] is False
