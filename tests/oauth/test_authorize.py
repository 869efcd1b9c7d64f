"""/oauth/2.0/authorize (RFC 6749 §4.1.1-§4.1.2, PROTOCOL §2): sign-in,
consent, remembered consent, prompt, loopback redirects, languages."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from openplatform.oauth.login_throttle import LoginThrottle
from openplatform.oauth.web import oauth_routes
from tests.oauth.browser import find_form, query_of
from tests.oauth.conftest import ISSUER, PASSWORD, REDIRECT_URI, USERNAME, OAuthWorld
from tests.oauth.flows import AUTHORIZE, Pkce, authorize, authorize_params, exchange


async def test_login_then_consent_pages_show_the_app_and_the_scopes_in_words(
    world: OAuthWorld,
) -> None:
    login = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    assert login.status_code == 200
    assert login.headers["content-type"].startswith("text/html")
    assert 'name="viewport"' in login.text
    assert "Photo Printer" in login.text
    form = find_form(login.text)
    consent = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
    )
    assert consent.status_code == 200
    assert "Photo Printer" in consent.text
    assert "See your email address" in consent.text
    assert ("action", "approve") in find_form(consent.text).buttons
    assert ("action", "deny") in find_form(consent.text).buttons


async def test_wrong_password_shows_the_login_page_again(world: OAuthWorld) -> None:
    query = authorize_params(world.app, Pkce.new())
    form = find_form((await world.http.get(AUTHORIZE, params=query)).text)
    again = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password="x"))
    )
    assert again.status_code == 401
    assert "Wrong username or password" in again.text
    assert "location" not in again.headers


async def test_consent_is_remembered_unless_prompt_consent(world: OAuthWorld) -> None:
    await authorize(world.http, authorize_params(world.app, Pkce.new()))
    again = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    assert again.status_code == 302
    assert "code" in query_of(again.headers["location"])
    narrower = await world.http.get(
        AUTHORIZE, params=authorize_params(world.app, Pkce.new(), scope="basic")
    )
    assert narrower.status_code == 302
    forced = await world.http.get(
        AUTHORIZE, params=authorize_params(world.app, Pkce.new(), prompt="consent")
    )
    assert forced.status_code == 200
    assert ("action", "approve") in find_form(forced.text).buttons


async def test_wider_scope_asks_again(world: OAuthWorld) -> None:
    await authorize(world.http, authorize_params(world.app, Pkce.new(), scope="basic"))
    wider = await world.http.get(AUTHORIZE, params=authorize_params(world.app, Pkce.new()))
    assert wider.status_code == 200
    assert "See your email address" in wider.text


async def test_prompt_login_asks_for_the_password_again(world: OAuthWorld) -> None:
    await authorize(world.http, authorize_params(world.app, Pkce.new()))
    page = await world.http.get(
        AUTHORIZE, params=authorize_params(world.app, Pkce.new(), prompt="login")
    )
    assert page.status_code == 200
    assert ("action", "login") in find_form(page.text).fields


async def test_prompt_none_without_a_session_is_access_denied(world: OAuthWorld) -> None:
    response = await world.http.get(
        AUTHORIZE, params=authorize_params(world.app, Pkce.new(), prompt="none")
    )
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error_code"] == "10009"


async def test_loopback_redirect_matches_any_port(world: OAuthWorld) -> None:
    """RFC 8252 §7.3."""
    app = await world.new_app(redirect_uris=["http://127.0.0.1/callback"], public=True)
    pkce = Pkce.new()
    uri = "http://127.0.0.1:54321/callback"
    response = await world.http.get(AUTHORIZE, params=authorize_params(app, pkce, redirect_uri=uri))
    form = find_form(response.text)
    consent = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
    )
    form = find_form(consent.text)
    done = await world.http.post(form.action, data=dict(form.data(action="approve")))
    assert done.status_code == 303
    assert done.headers["location"].startswith(uri + "?")
    code = query_of(done.headers["location"])["code"]
    token = await world.http.post(
        "/oauth/2.0/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": app.api_key,
            "redirect_uri": uri,
            "code_verifier": pkce.verifier,
        },
    )
    assert token.status_code == 200, token.text


async def test_redirect_uri_may_be_omitted_only_with_one_registered(world: OAuthWorld) -> None:
    """PROTOCOL §2: omitted with several registered is an error page (10000)."""
    app = await world.new_app(redirect_uris=[REDIRECT_URI, "https://client.example/two"])
    page = await world.http.get(
        AUTHORIZE, params=authorize_params(app, Pkce.new(), redirect_uri="")
    )
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "10000" in page.text
    query = await authorize(world.http, authorize_params(world.app, Pkce.new(), redirect_uri=""))
    assert "code" in query


async def test_pkce_is_required_and_plain_refused(world: OAuthWorld) -> None:
    """PROTOCOL §2, RFC 7636 §4.4.1: required by default; plain refused (10000)."""
    for extra in ({}, {"code_challenge": "a" * 43, "code_challenge_method": "plain"}):
        params = authorize_params(world.app, None, **extra)
        response = await world.http.get(AUTHORIZE, params=params)
        assert response.status_code == 302
        query = query_of(response.headers["location"])
        assert (query["error_code"], query["state"], query["iss"]) == ("10000", "xyz-state", ISSUER)


async def test_confidential_app_may_opt_out_of_pkce(world: OAuthWorld) -> None:
    app = await world.new_app(require_pkce=False)
    query = await authorize(world.http, authorize_params(app, None))
    pkce_less = Pkce("", "")
    response = await exchange(world.http, app, query["code"], pkce_less)
    assert response.status_code == 200, response.text


async def test_pages_speak_chinese_on_request(world: OAuthWorld) -> None:
    params = authorize_params(world.app, Pkce.new())
    by_header = await world.http.get(
        AUTHORIZE, params=params, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    )
    assert "登录" in by_header.text
    assert 'lang="zh-CN"' in by_header.text
    by_param = await world.http.get(
        AUTHORIZE, params={**params, "lang": "en"}, headers={"Accept-Language": "zh-CN"}
    )
    assert "Sign in" in by_param.text
    error = await world.http.get(
        AUTHORIZE, params={"response_type": "code", "client_id": "nobody", "lang": "zh"}
    )
    assert error.status_code == 400
    assert "用户认证失败" in error.text


async def test_login_is_rate_limited_per_account(world: OAuthWorld) -> None:
    """RFC 6749 §10.10: guessing is limited per account (and per IP)."""
    params = authorize_params(world.app, Pkce.new())
    form = find_form((await world.http.get(AUTHORIZE, params=params)).text)
    statuses = []
    for _ in range(11):
        response = await world.http.post(
            form.action, data=dict(form.data(username=USERNAME, password="guess"))
        )
        statuses.append(response.status_code)
    assert statuses == [401] * 10 + [429]
    assert int(response.headers["retry-after"]) > 0
    # PROTOCOL §3.3: a rate-limited route carries X-RateLimit-* on every answer.
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert int(response.headers["x-ratelimit-reset"]) > 0
    assert response.headers["x-error-code"] == "4"
    right = await world.http.post(
        form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
    )
    assert right.status_code == 429


async def test_login_is_rate_limited_per_ip(world: OAuthWorld) -> None:
    """Many accounts from one address: the per-IP limit stops them (here 5)."""
    throttle = LoginThrottle(world.services.shared_state, failures_per_ip=5)
    app = Starlette(routes=oauth_routes(world.services, throttle=throttle))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        params = authorize_params(world.app, Pkce.new())
        form = find_form((await http.get(AUTHORIZE, params=params)).text)
        statuses = []
        for i in range(6):
            response = await http.post(
                form.action, data=dict(form.data(username=f"nobody{i}", password="guess"))
            )
            statuses.append(response.status_code)
        assert statuses == [401] * 5 + [429]
        blocked = await http.post(
            form.action, data=dict(form.data(username=USERNAME, password=PASSWORD))
        )
        assert blocked.status_code == 429


async def test_stylesheet_is_served(world: OAuthWorld) -> None:
    css = await world.http.get("/static/openplatform.css")
    assert css.status_code == 200
    assert "max-width" in css.text
