"""No input, however malformed, yields a stack trace or a 500 (PROTOCOL §1):
the OAuth endpoints answer 10000 (or 10001) with a JSON body."""

from __future__ import annotations

import base64

import pytest

from tests.oauth.conftest import OAuthWorld
from tests.oauth.flows import AUTHORIZE, TOKEN, basic_auth

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&scope=%ZZ",
        b"grant_type=client_credentials&scope=\xff\xfe",
        b"grant_type=" + b"x" * 5000,
        b"\x00\x01\x02",
        b"=&&=&grant_type",
        b"grant_type=client_credentials&" + b"a&" * 100,
        b"grant_type=client_credentials&" + b"a&" * 500_000,  # counted, never all kept
    ],
)
@pytest.mark.parametrize("path", [TOKEN, "/oauth/2.0/revoke", "/oauth/2.0/introspect"])
async def test_malformed_bodies_are_invalid_request(
    world: OAuthWorld, path: str, body: bytes
) -> None:
    response = await world.http.post(path, content=body, headers={**FORM, **basic_auth(world.app)})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error_code"] == 10000


@pytest.mark.parametrize(
    "authorization",
    ["Basic", "Basic ====", "Basic " + base64.b64encode(b"\xff:\xfe").decode(), "Basic a b c"],
)
async def test_malformed_basic_credentials_are_401_invalid_client(
    world: OAuthWorld, authorization: str
) -> None:
    response = await world.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.json()["error_code"] == 10001
    assert response.headers["www-authenticate"] == 'Basic realm="openplatform"'


async def test_form_encoded_basic_credentials_are_decoded(world: OAuthWorld) -> None:
    """RFC 6749 §2.3.1: ``ak_…`` sent as ``ak%5F…`` still authenticates."""
    client_id = world.app.api_key.replace("_", "%5F")
    raw = base64.b64encode(f"{client_id}:{world.app.secret}".encode()).decode()
    response = await world.http.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {raw}"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "query",
    [
        "client_id=%ZZ",
        "client_id=%FF%FE",
        "client_id=" + "a" * 5000,
        "redirect_uri=https://client.example/cb&client_id=",
    ],
)
async def test_malformed_authorize_requests_get_an_error_page(
    world: OAuthWorld, query: str
) -> None:
    response = await world.http.get(f"{AUTHORIZE}?{query}")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


async def test_authorize_post_must_be_a_form(world: OAuthWorld) -> None:
    response = await world.http.post(AUTHORIZE, json={"client_id": world.app.api_key})
    assert response.status_code == 400
    assert "10000" in response.text


@pytest.mark.parametrize("path", ["/oauth/2.0/token", "/oauth/2.0/revoke", "/oauth/2.0/introspect"])
@pytest.mark.parametrize("raw", [b"Basic \xff\xff", "Basic é:é".encode(), b"Basic \xc3\xa9"])
async def test_non_ascii_basic_credentials_are_401_invalid_client(
    world: OAuthWorld, path: str, raw: bytes
) -> None:
    """RFC 6749 §2.3.1 / PROTOCOL §2: a Basic header that is not base64 text is
    a failed client authentication (401), never an unknown error."""
    response = await world.http.post(
        path,
        content=b"grant_type=client_credentials&token=x",
        headers={"Authorization": raw, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error_code"] == 10001
    assert response.headers["www-authenticate"] == 'Basic realm="openplatform"'
