"""The authorization code flow driven over HTTP, as a browser and a client
would drive it (used by the endpoint tests; the interop tests drive it with
``requests`` against a real server)."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

import httpx

from openplatform.oauth.rfc7636 import s256_challenge
from openplatform.storage.apps import AppRecord
from tests.oauth.browser import find_form, query_of
from tests.oauth.conftest import PASSWORD, REDIRECT_URI, USERNAME

AUTHORIZE = "/oauth/2.0/authorize"
TOKEN = "/oauth/2.0/token"


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @classmethod
    def new(cls) -> Pkce:
        verifier = secrets.token_urlsafe(48)
        return cls(verifier, s256_challenge(verifier))


def basic_auth(app: AppRecord) -> dict[str, str]:
    raw = f"{app.api_key}:{app.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def authorize_params(app: AppRecord, pkce: Pkce | None, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": app.api_key,
        "redirect_uri": REDIRECT_URI,
        "scope": "basic email",
        "state": "xyz-state",
    }
    if pkce is not None:
        params["code_challenge"] = pkce.challenge
        params["code_challenge_method"] = "S256"
    params.update(extra)
    return {k: v for k, v in params.items() if v != ""}


async def authorize(
    http: httpx.AsyncClient,
    params: dict[str, str],
    *,
    approve: bool = True,
    username: str = USERNAME,
    password: str = PASSWORD,
) -> dict[str, str]:
    """Sign in (if needed), approve or deny (if asked): the query of the final
    redirect to the client."""
    response = await http.get(AUTHORIZE, params=params)
    for _ in range(3):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            assert location.startswith(REDIRECT_URI), location
            return query_of(location)
        assert response.status_code == 200, response.text
        form = find_form(response.text)
        if ("action", "login") in form.fields:
            data = form.data(username=username, password=password)
        else:
            data = form.data(action="approve" if approve else "deny")
        response = await http.post(form.action, data=dict(data))
    raise AssertionError("the flow did not end in a redirect")


async def get_code(http: httpx.AsyncClient, app: AppRecord, pkce: Pkce, **extra: str) -> str:
    query = await authorize(http, authorize_params(app, pkce, **extra))
    assert "code" in query, query
    return query["code"]


async def exchange(
    http: httpx.AsyncClient, app: AppRecord, code: str, pkce: Pkce, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce.verifier,
    }
    data.update(extra)
    return await http.post(
        TOKEN, data={k: v for k, v in data.items() if v != ""}, headers=basic_auth(app)
    )


async def tokens_for(http: httpx.AsyncClient, app: AppRecord) -> dict[str, object]:
    """A full flow: the token response body."""
    pkce = Pkce.new()
    code = await get_code(http, app, pkce)
    response = await exchange(http, app, code, pkce)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def refresh(
    http: httpx.AsyncClient, app: AppRecord, refresh_token: str, **extra: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return await http.post(TOKEN, data=data, headers=basic_auth(app))
