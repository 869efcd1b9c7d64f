"""Security properties of the authorization server (PROTOCOL §2, RFC 9700):
no open redirect, CSRF on the forms, pages that cannot be framed, tokens
stored only as hashes."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.oauth.browser import find_form
from tests.oauth.conftest import PASSWORD, REDIRECT_URI, USERNAME, OAuthWorld
from tests.oauth.flows import AUTHORIZE, Pkce, authorize_params, tokens_for

EVIL = "https://evil.example/cb"

# Every request a malicious link could make /authorize answer with a redirect
# somewhere other than the app's registered URI.
OPEN_REDIRECT_ATTEMPTS = [
    {"redirect_uri": EVIL},
    {"redirect_uri": EVIL, "response_type": "token"},
    {"redirect_uri": EVIL, "scope": "mobile"},
    {"redirect_uri": EVIL, "code_challenge_method": "plain"},
    {"redirect_uri": EVIL, "client_id": "ak_unknown"},
    {"redirect_uri": EVIL, "client_id": ""},
    {"redirect_uri": REDIRECT_URI + ".evil.example"},
    {"redirect_uri": REDIRECT_URI + "/../../evil"},
    {"redirect_uri": REDIRECT_URI + "?next=https://evil.example"},
    {"redirect_uri": "https://client.example@evil.example/cb"},
    {"redirect_uri": "//evil.example/cb"},
    {"redirect_uri": "javascript:alert(1)"},
    {"redirect_uri": REDIRECT_URI.upper()},
]


@pytest.mark.parametrize("attempt", OPEN_REDIRECT_ATTEMPTS)
async def test_no_redirect_to_an_unregistered_uri_in_any_error_path(
    world: OAuthWorld, attempt: dict[str, str]
) -> None:
    params = authorize_params(world.app, Pkce.new(), **attempt)
    for response in (
        await world.http.get(AUTHORIZE, params=params),
        await world.http.post(AUTHORIZE, data=params),
        await world.http.post(AUTHORIZE, data={**params, "action": "approve"}),
    ):
        assert response.status_code == 400, response.text
        assert "location" not in response.headers


async def test_duplicated_redirect_uri_is_not_followed(world: OAuthWorld) -> None:
    response = await world.http.get(
        AUTHORIZE
        + f"?response_type=code&client_id={world.app.api_key}"
        + f"&redirect_uri={REDIRECT_URI}&redirect_uri={EVIL}"
    )
    assert response.status_code == 400
    assert "location" not in response.headers


@pytest.mark.parametrize("token", [None, "", "forged"])
async def test_login_form_without_the_right_csrf_token_is_refused(
    world: OAuthWorld, token: str | None
) -> None:
    page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    form = find_form(page.text)
    data = dict(form.data(username=USERNAME, password=PASSWORD))
    if token is None:
        del data["csrf_token"]
    else:
        data["csrf_token"] = token
    response = await world.http.post(form.action, data=data)
    assert response.status_code == 403
    assert "op_session" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("token", [None, "forged"])
async def test_consent_form_without_the_right_csrf_token_is_refused(
    world: OAuthWorld, token: str | None
) -> None:
    page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    form = find_form(page.text)
    consent = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
    )
    data = dict(find_form(consent.text).data(action="approve"))
    if token is None:
        del data["csrf_token"]
    else:
        data["csrf_token"] = token
    response = await world.http.post(form.action, data=data)
    assert response.status_code == 403
    assert "location" not in response.headers
    assert await world.db.consents.get(world.uid, world.app.id) is None


async def test_csrf_token_of_another_browser_is_refused(world: OAuthWorld) -> None:
    """The token is bound to this browser's cookie: a token copied from the
    attacker's own page does not work with the victim's cookie."""
    page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    attacker_token = dict(find_form(page.text).fields)["csrf_token"]
    world.http.cookies.clear()
    victim_page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    form = find_form(victim_page.text)
    data = dict(form.data(username=USERNAME, password=PASSWORD, csrf_token=attacker_token))
    response = await world.http.post(form.action, data=data)
    assert response.status_code == 403


async def test_login_and_consent_pages_cannot_be_framed(world: OAuthWorld) -> None:
    login = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    form = find_form(login.text)
    consent = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
    )
    error = await world.http.get(AUTHORIZE, params={"client_id": "nobody"})
    for page in (login, consent, error):
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


async def test_sign_in_cookie_is_http_only_and_same_site(world: OAuthWorld) -> None:
    page = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    form = find_form(page.text)
    consent = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
    )
    cookie = consent.headers["set-cookie"].lower()
    assert "op_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_tokens_codes_and_secrets_are_stored_only_hashed_or_encrypted(
    world: OAuthWorld,
) -> None:
    body = await tokens_for(world.http, world.app)
    raw = [
        str(body[key]) for key in ("access_token", "refresh_token", "session_key", "session_secret")
    ]
    raw.append(world.app.secret)
    async with world.db.sessions.read() as session:
        dump = ""
        for table in ("access_tokens", "refresh_tokens", "authorization_codes", "apps", "grants"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()
            dump += repr(rows)
    for value in raw:
        assert value not in dump
    from openplatform.storage.crypto import hash_token

    assert hash_token(str(body["access_token"])) in dump


async def test_error_page_links_never_carry_the_password(world: OAuthWorld) -> None:
    """A review found the 400 page's language link repeating every submitted
    field, the password included."""
    response = await world.http.post(
        AUTHORIZE,
        data={
            "response_type": "code",
            "client_id": "ak_unknown",
            "state": "s1",
            "username": USERNAME,
            "password": "hunter2-secret",
            "csrf_token": "t",
            "action": "login",
        },
    )
    assert response.status_code == 400
    assert "hunter2-secret" not in response.text
    links = [part.split('"', 1)[0] for part in response.text.split('href="')[1:]]
    switch = [link for link in links if "lang=" in link]
    assert switch, links
    for link in switch:
        assert "password" not in link and "username" not in link and "csrf" not in link
        assert "client_id=ak_unknown" in link and "state=s1" in link


@pytest.mark.parametrize(
    ("cookies", "fields"),
    [
        ({}, {"csrf_token": "é"}),
        ({"op_csrf": "é" * 20}, {"csrf_token": "abc"}),
        ({"op_session": "1.2.\u00e9"}, {}),
        ({"op_session": "1.2.3.ü.é"}, {}),
    ],
)
async def test_non_ascii_cookies_and_csrf_tokens_are_refused_not_500(
    world: OAuthWorld, cookies: dict[str, str], fields: dict[str, str]
) -> None:
    params = authorize_params(world.app, Pkce.new())
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    headers = {"Cookie": header.encode()} if cookies else {}
    for response in (
        await world.http.get(AUTHORIZE, params=params, headers=headers),
        await world.http.post(
            AUTHORIZE,
            data={
                **params,
                "action": "login",
                "username": USERNAME,
                "password": PASSWORD,
                **fields,
            },
            headers=headers,
        ),
    ):
        assert response.status_code in (200, 403), response.text
        assert response.headers.get("x-error-code") != "1"


async def test_loopback_redirect_with_a_host_after_the_literal_is_refused(
    world: OAuthWorld,
) -> None:
    """PROTOCOL §2: for a registered ``http://[::1]:8080/cb?x=1`` the host must
    be exactly ``[::1]`` — ``http://[::1]evil.com/cb?x=1`` got a redirect."""
    app = await world.new_app(redirect_uris=["http://[::1]:8080/cb?x=1"])
    for uri, status in (
        ("http://[::1]evil.com/cb?x=1", 400),
        ("http://[::1]:9999/cb?x=1", 200),
    ):
        params = {**authorize_params(app, Pkce.new()), "redirect_uri": uri}
        response = await world.http.get(AUTHORIZE, params=params)
        assert response.status_code == status, response.text
        assert "location" not in response.headers
        if status == 400:
            assert "10007" in response.text
