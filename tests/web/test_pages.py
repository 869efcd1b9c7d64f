"""The console, account and reference pages over HTTP (no browser): security
headers and cookies, CSRF on every form, the sign-in limits and session
epoch of PROTOCOL §2 and §5, sign-up rules, a rotated secret refused at
once, escaping, and every app and consent kept to its owner."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.config import Settings
from openplatform.gateway.signature import sign
from openplatform.services import Services
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database

PASSWORD = "long enough password"
BASE = "http://testserver"


@pytest.fixture
async def services(sqlite_database: Database, tmp_path: Path) -> Services:
    settings = Settings.from_env(
        {"OPENPLATFORM_DATA_DIR": str(tmp_path), "OPENPLATFORM_LOGIN_FAILURES_PER_ACCOUNT": "3"}
    )
    return Services(settings, sqlite_database, MemorySharedState(prefix="t"), BASE)


def _client(services: Services, base: str = BASE) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(services.settings, services))
    return httpx.AsyncClient(transport=transport, base_url=base)


@pytest.fixture
async def browser(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(services) as client:
        yield client


def _csrf(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


async def _post(
    client: httpx.AsyncClient, path: str, form_page: str, **data: str
) -> httpx.Response:
    token = _csrf(await client.get(form_page))
    return await client.post(path, data={"csrf_token": token, **data})


async def _sign_up(client: httpx.AsyncClient, username: str) -> None:
    answer = await _post(
        client,
        "/signup",
        "/signup",
        username=username,
        password=PASSWORD,
        password_again=PASSWORD,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"


async def _new_app(client: httpx.AsyncClient, name: str) -> int:
    answer = await _post(client, "/console/apps/new", "/console/apps/new", name=name)
    assert answer.status_code == 303, answer.text
    match = re.match(r"/console/apps/(\d+)\?created=1", answer.headers["location"])
    assert match
    return int(match.group(1))


@pytest.mark.parametrize(
    "path", ["/", "/signin", "/signup", "/docs/methods", "/docs/errors", "/docs/admin-api"]
)
async def test_pages_are_not_frameable_and_run_no_inline_script(
    browser: httpx.AsyncClient, path: str
) -> None:
    page = await browser.get(path)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "an inline script"
    assert not re.search(r"\son[a-z]+=", page.text), "an inline event handler"
    assert " style=" not in page.text


async def test_front_door_in_both_languages(browser: httpx.AsyncClient) -> None:
    english = await browser.get("/")
    for link in ("/console", "/account", "/docs/methods", "/docs/errors", "/docs/admin-api"):
        assert f'href="{link}"' in english.text
    assert 'href="/.well-known/oauth-authorization-server"' in english.text
    chinese = await browser.get("/", params={"lang": "zh"})
    assert '<html lang="zh-CN">' in chinese.text and "开发者控制台" in chinese.text
    # The choice is remembered for the next page.
    assert '<html lang="zh-CN">' in (await browser.get("/docs/errors")).text


async def test_cookies_are_http_only_lax_and_secure_under_https(
    services: Services,
) -> None:
    services.issuer = "https://testserver"
    async with _client(services, services.issuer) as client:
        page = await client.get("/signup")
        assert "; secure" in page.headers["set-cookie"].lower()
        await _sign_up(client, "sam")
    async with _client(services, services.issuer) as client:
        answer = await _post(
            client, "/signin", "/signin", username="sam", password=PASSWORD, next="/console"
        )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("op_session="))
    lowered = cookie.lower()
    assert "httponly" in lowered and "samesite=lax" in lowered and "secure" in lowered


@pytest.mark.parametrize(
    ("path", "form_page"),
    [
        ("/signin", "/signin"),
        ("/signup", "/signup"),
        ("/console/apps/new", "/console/apps/new"),
        ("/console/explorer", "/console/explorer"),
        ("/signout", "/"),
    ],
)
async def test_every_form_needs_its_csrf_token(
    browser: httpx.AsyncClient, path: str, form_page: str
) -> None:
    await _sign_up(browser, "carol")
    await browser.get(form_page)
    for token in ("", "forged", "0" * 64):
        answer = await browser.post(path, data={"csrf_token": token, "name": "x"})
        assert answer.status_code in (303, 403), answer.status_code
        if answer.status_code == 303:  # sign-out: nothing done, back to the front door
            assert answer.headers["location"] == "/"
    # Nothing happened: still signed in, no app made.
    apps = await browser.get("/console")
    assert apps.status_code == 200 and "app-row" not in apps.text


async def test_sign_up_rules(browser: httpx.AsyncClient) -> None:
    async def attempt(**data: str) -> httpx.Response:
        return await _post(browser, "/signup", "/signup", **data)

    short = await attempt(username="dora", password="short", password_again="short")
    assert short.status_code == 400 and "at least 10 characters" in short.text
    named = await attempt(username="dora", password="dora-is-great", password_again="dora-is-great")
    assert "must not contain the username" in named.text
    mismatch = await attempt(username="dora", password=PASSWORD, password_again=PASSWORD + "!")
    assert "differ" in mismatch.text
    bad_name = await attempt(username="a b", password=PASSWORD, password_again=PASSWORD)
    assert bad_name.status_code == 400 and 'id="username-error"' in bad_name.text
    await _sign_up(browser, "dora")
    async with _client_like(browser) as other:
        taken = await _post(
            other, "/signup", "/signup", username="dora", password=PASSWORD, password_again=PASSWORD
        )
    assert taken.status_code == 400 and "taken" in taken.text


def _client_like(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=client._transport, base_url=BASE)


async def test_sign_in_limits_and_safe_next(browser: httpx.AsyncClient) -> None:
    """PROTOCOL §2: failed password checks per account (3 in this test's
    settings), counted with the authorization page's; then 429 with code 4."""
    await _sign_up(browser, "erin")
    async with _client_like(browser) as client:
        evil = await _post(
            client,
            "/signin",
            "/signin",
            username="erin",
            password=PASSWORD,
            next="//evil.example/x",
        )
        assert evil.status_code == 303 and evil.headers["location"] == "/console"
    async with _client_like(browser) as client:
        for _ in range(3):
            wrong = await _post(client, "/signin", "/signin", username="erin", password="nope")
            assert wrong.status_code == 401 and "Wrong username or password." in wrong.text
        limited = await _post(client, "/signin", "/signin", username="erin", password=PASSWORD)
        assert limited.status_code == 429
        assert limited.headers["X-Error-Code"] == "4" and int(limited.headers["Retry-After"]) > 0
        assert "Too many sign-in attempts" in limited.text


async def test_a_password_change_or_disabling_ends_the_console_session(
    browser: httpx.AsyncClient, services: Services
) -> None:
    await _sign_up(browser, "fred")
    assert (await browser.get("/console")).status_code == 200
    user = await services.database.users.get_by_username("fred")
    assert user is not None
    await services.database.users.update(user.uid, {"password": "another long password"})
    out = await browser.get("/console")
    assert out.status_code == 303 and out.headers["location"].startswith("/signin")
    async with _client_like(browser) as client:
        await _post(client, "/signin", "/signin", username="fred", password="another long password")
        assert (await client.get("/account")).status_code == 200
        await services.database.users.update(user.uid, {"disabled": True})
        assert (await client.get("/account")).status_code == 303


async def test_a_rotated_secret_stops_working_at_once(
    browser: httpx.AsyncClient, services: Services
) -> None:
    await _sign_up(browser, "gina")
    app_id = await _new_app(browser, "Rotating")
    page = f"/console/apps/{app_id}"
    wrong = await _post(browser, f"{page}/secret", page, action="reveal", password="nope")
    assert wrong.status_code == 401 and 'id="password-secret"' not in wrong.text
    shown = await _post(browser, f"{page}/secret", page, action="reveal", password=PASSWORD)
    old = re.search(r'<code id="secret">([0-9a-f]+)</code>', shown.text)
    assert old and shown.headers["cache-control"] == "no-store"
    app = await services.database.apps.get(app_id)
    assert app is not None

    async def call(secret: str) -> str:
        pairs = [
            ("method", "application.getPublicInfo"),
            ("api_key", app.api_key),
            ("timestamp", str(int(time.time()))),
            ("call_id", str(time.time_ns())),
            ("application_id", str(app_id)),
        ]
        pairs.append(("sig", sign(pairs, secret)))
        answer = await browser.post("/rest/2.0/", data=dict(pairs))
        return answer.headers["X-Error-Code"]

    assert await call(old.group(1)) == "0"
    rotated = await _post(browser, f"{page}/secret", page, action="rotate", password=PASSWORD)
    new = re.search(r'<code id="secret">([0-9a-f]+)</code>', rotated.text)
    assert new and new.group(1) != old.group(1)
    assert await call(old.group(1)) == "104"
    assert await call(new.group(1)) == "0"


async def test_apps_and_consents_belong_to_their_owners(
    browser: httpx.AsyncClient, services: Services
) -> None:
    await _sign_up(browser, "hana")
    mine = await _new_app(browser, "<script>alert(1)</script>")
    listing = await browser.get("/console")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing.text
    assert "<script>alert(1)" not in listing.text
    operator_app = await services.database.apps.create(AppSettings(name="Operator's"))
    async with _client_like(browser) as other:
        await _sign_up(other, "ivan")
        for app_id in (mine, operator_app.id, 999_999):
            for path in ("", "/settings", "/usage"):
                answer = await other.get(f"/console/apps/{app_id}{path}")
                assert answer.status_code == 404, (app_id, path)
            for path in ("/settings", "/secret", "/delete"):
                answer = await _post(
                    other, f"/console/apps/{app_id}{path}", "/console", name="x", password=PASSWORD
                )
                assert answer.status_code == 404, (app_id, path)
        explorer = await _post(
            other, "/console/explorer", "/console/explorer", app=str(mine), method="users.getInfo"
        )
        assert explorer.status_code == 404
        # A consent of someone else cannot be revoked from this account.
        hana = await services.database.users.get_by_username("hana")
        assert hana is not None
        await services.database.consents.grant(hana.uid, mine, "basic")
        revoke = await _post(other, f"/account/apps/{mine}/revoke", "/account")
        assert revoke.status_code == 404
    assert await services.database.consents.get(hana.uid, mine) is not None
    account = await browser.get("/account")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in account.text


async def test_settings_show_every_error_next_to_its_field(browser: httpx.AsyncClient) -> None:
    await _sign_up(browser, "jo")
    app_id = await _new_app(browser, "Configured")
    page = f"/console/apps/{app_id}/settings"
    answer = await _post(
        browser,
        page,
        page,
        name="Configured",
        ip_allowlist="10.0.0.0/8\n10.0.0.300",
        referer_allowlist="http://bad/",
        access_token_ttl_s="0",
        refresh_token_ttl_s="soon",
        refresh_reuse_grace_s="10",
        rate_limit_rows="2",
        rl_methods_0="*",
        rl_per_0="app",
        rl_limit_0="0",
        rl_window_0="60",
        scopes="basic",
        grants="authorization_code",
    )
    assert answer.status_code == 400
    errors = dict(re.findall(r'<p class="field-error" id="([^"]+)">([^<]*)</p>', answer.text))
    assert errors["ip_allowlist-error"].startswith("114 Invalid Ip: ip_allowlist[1]")
    assert errors["referer_allowlist-error"].startswith("100 Invalid parameter")
    assert "between 1 and 2592000" in errors["access_token_ttl_s-error"]
    assert "whole number" in errors["refresh_token_ttl_s-error"]
    assert "limit" in errors["rl-error-0"]
    saved = await _post(
        browser,
        page,
        page,
        name="Configured",
        ip_allowlist="10.0.0.0/8",
        access_token_ttl_s="60",
        refresh_token_ttl_s="86400",
        refresh_reuse_grace_s="10",
        rate_limit_rows="3",
        rl_methods_0="data.*",
        rl_per_0="user",
        rl_limit_0="5",
        rl_window_0="1",
        scopes="email",
        grants="authorization_code",
    )
    assert saved.status_code == 303
    shown = await browser.get(saved.headers["location"])
    assert "Settings saved." in shown.text and "Under 5 minutes" in shown.text
    assert 'value="data.*"' in shown.text
