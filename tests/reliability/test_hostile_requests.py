"""Hostile requests to every route of the application (issue 12, hostile
input; PROTOCOL §1: no input, however malformed, yields a stack trace, a 500
without code 1, or a hang), on SQLite and PostgreSQL: invalid UTF-8 and
broken percent-escapes in the query, the body, cookies and headers; NUL,
SQL-ish and path-ish text in every field of every form and admin API body;
CR/LF in redirect URIs, ``state`` and ``next``, which must never become a
header. Every answer is a page or a catalogue code (never code 1), and the
server answers normally afterwards.

Schemathesis holds the admin API to its OpenAPI document separately
(``tests/admin/test_openapi.py``, every declared operation)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest
from starlette.routing import Route

from openplatform.admin.api import OPERATIONS
from openplatform.app import create_app
from openplatform.errors import CATALOGUE, Code
from openplatform.json_schema import Object
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.database import Database
from tests.gateway.client import ApiClient
from tests.oauth.conftest import (
    ISSUER,
    PASSWORD,
    REDIRECT_URI,
    USERNAME,
    make_services,
    make_settings,
)
from tests.oauth.flows import Pkce, authorize_params, basic_auth

FORM = "application/x-www-form-urlencoded"
# Field values as raw form bytes: broken escapes, bad UTF-8, NUL, CR/LF,
# SQL-ish and path-ish text, and one far too long.
RAW_VALUES = [
    b"%FF%FE",
    b"%E0%80%AF",
    b"%ED%A0%80",
    b"%ZZ",
    b"100%",
    b"a%00b",
    b"%0D%0ASet-Cookie:%20injected=1",
    b"%27%3B%20DROP%20TABLE%20users%3B%20--",
    b"..%2F..%2F..%2Fetc%2Fpasswd",
    b"%F0%9F%98%80" * 50,
    b"x" * 70_000,
]
# Header values no client should send.
BAD_HEADERS = {
    "cookie": b"op_session=\xff\xfe; op_csrf=%FF; =; \x00",
    "accept-language": b"\xff\xfe;q=\xff",
    "referer": b"http://\xff\xfe/",
    "authorization": b"Bearer \xff\x00",
    "x-forwarded-for": b"\xff, 999.1.1.1, ::zz",
    "x-request-id": b"\xff\xfe\x00",
    "content-type": b"application/x-www-form-urlencoded; charset=\xff",
    "content-length": "²".encode(),
}


@dataclass
class Site:
    db: Database
    http: httpx.AsyncClient  # signed in to the console
    anonymous: httpx.AsyncClient
    app: AppRecord  # the target (the admin token may delete it)
    canary: AppRecord  # untouched: its calls show the server still answers
    uid: int
    admin: dict[str, str]
    paths: list[tuple[str, str]]  # (HTTP method, path) of every route


def _concrete(path: str, app_id: int, uid: int) -> str:
    return (
        path.replace("{app_id}", str(app_id))
        .replace("{uid}", str(uid))
        .replace("{name}", "users.getInfo")
        .replace("{method:path}", "users.getInfo")
    )


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    settings = make_settings(
        database_url, tmp_path, LOGIN_FAILURES_PER_ACCOUNT="0", TRUSTED_PROXIES="127.0.0.1"
    )
    services = make_services(settings)
    application = create_app(settings, services)
    try:
        db = services.database
        user = await db.users.create(USERNAME, PASSWORD, email="a@example.com")
        app = await db.apps.create(
            AppSettings.from_mapping(
                {
                    "name": "Hostile target",
                    "redirect_uris": [REDIRECT_URI],
                    "scopes": ["basic", "email"],
                    "grants": ["authorization_code", "refresh_token", "password"],
                }
            ),
            owner_id=user.uid,
        )
        canary = await db.apps.create(AppSettings(name="Canary"))
        admin = {"Authorization": f"Bearer {await db.admin_tokens.create('hostile')}"}
        paths: list[tuple[str, str]] = []
        for route in application.routes:
            if isinstance(route, Route):
                for method in sorted(route.methods or {"GET", "POST"}):
                    if method != "HEAD":
                        paths.append((method, _concrete(route.path, app.id, user.uid)))
        transport = httpx.ASGITransport(app=application)
        async with (
            httpx.AsyncClient(transport=transport, base_url=ISSUER) as http,
            httpx.AsyncClient(transport=transport, base_url=ISSUER) as anonymous,
        ):
            page = await http.get("/signin")
            signed_in = await http.post(
                "/signin",
                data={"csrf_token": _csrf(page.text), "username": USERNAME, "password": PASSWORD},
            )
            assert signed_in.status_code == 303, signed_in.text
            yield Site(db, http, anonymous, app, canary, user.uid, admin, paths)
    finally:
        await services.close()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:300]
    return match.group(1)


def _field_names(html: str) -> set[str]:
    return set(re.findall(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', html))


def assert_answered(response: httpx.Response) -> None:
    """A page or a catalogue code; never code 1, a 500 or a traceback."""
    what = f"{response.request.method} {response.request.url.path}: {response.text[:300]}"
    assert response.status_code != 500, what
    assert "Traceback" not in response.text, what
    if response.headers.get("content-type", "").startswith("application/json"):
        body = orjson.loads(response.content)
        if isinstance(body, dict) and "error_code" in body:
            assert body["error_code"] in CATALOGUE, what
            assert body["error_code"] != Code.UNKNOWN, what
            assert response.headers["X-Error-Code"] == str(body["error_code"]), what
    for name, value in response.headers.items():
        assert "\r" not in value and "\n" not in value, (name, value)
        assert name.lower() != "set-cookie" or "injected" not in value, what


async def assert_healthy(site: Site) -> None:
    """The server answers as before: /healthz, a signed API call, a page."""
    assert (await site.anonymous.get("/healthz")).status_code == 200
    api = ApiClient(site.anonymous, api_key=site.canary.api_key, secret=site.canary.secret)
    answer = await api.call("users.getInfo", {"uids": str(site.uid), "fields": "username"})
    assert answer.json() == [{"uid": site.uid, "username": USERNAME}], answer.text
    assert (await site.http.get("/console")).status_code in (200, 303)


async def test_broken_bytes_in_query_body_cookies_and_headers_of_every_route(site: Site) -> None:
    assert len(site.paths) > 30
    query = b"a=%FF%FE&%ZZ=1&b=%&lang=%E0%80&client_id=%00&state=%0d%0a&format=xml"
    bodies = [
        b"csrf_token=%FF&" + b"&".join(b"a=" + raw + b"&" + raw + b"=1" for raw in RAW_VALUES[:-1]),
        b"\xff\xfe=\x00&a=" + RAW_VALUES[-1],
    ]
    json_body = b'{"name": "\xff\xfe", "\x00": [' + b"[" * 10_000 + b"]"
    for method, path in site.paths:
        # signing out would leave the rest of the routes without a session
        clients = [site.anonymous] if path == "/signout" else [site.http, site.anonymous]
        for client in clients:
            url = httpx.URL(ISSUER + path, query=query)
            headers = {"Content-Type": FORM, **site.admin}
            assert_answered(await client.request(method, url, headers=headers))
            for body in bodies:
                assert_answered(await client.request(method, path, content=body, headers=headers))
            json_headers = {"Content-Type": "application/json", **site.admin}
            assert_answered(
                await client.request(method, path, content=json_body, headers=json_headers)
            )
        for name, value in BAD_HEADERS.items():
            bad = {"Content-Type": FORM, name: value}
            answer = await clients[0].request(method, path, content=b"a=1", headers=bad)
            assert_answered(answer)
    await assert_healthy(site)


async def test_hostile_text_in_every_field_of_every_form(site: Site) -> None:
    """Each page's form fields, one at a time, with each hostile value and
    the right CSRF token: a page again (the field's message) or a redirect."""
    pkce = Pkce.new()
    pages = [
        ("/signin", "/signin"),
        ("/signup", "/signup"),
        ("/console/apps/new", "/console/apps/new"),
        (f"/console/apps/{site.app.id}/settings", f"/console/apps/{site.app.id}/settings"),
        ("/console/explorer", "/console/explorer"),
    ]
    authorize = "/oauth/2.0/authorize?" + "&".join(
        f"{k}={quote(v)}" for k, v in authorize_params(site.app, pkce).items()
    )
    checked = 0
    for client, form_page, action in [
        *((site.http, page, action) for page, action in pages),
        (site.anonymous, authorize, authorize),
    ]:
        page = await client.get(form_page)
        if page.status_code != 200:
            continue
        names = _field_names(page.text) - {"csrf_token"}
        token = _csrf(page.text).encode()
        for name in sorted(names):
            for raw in RAW_VALUES:
                body = b"csrf_token=" + token + b"&" + quote(name).encode() + b"=" + raw
                answer = await client.post(action, content=body, headers={"Content-Type": FORM})
                assert_answered(answer)
                checked += 1
    assert checked > 100
    await assert_healthy(site)


async def test_hostile_text_in_every_admin_api_field(site: Site) -> None:
    """NUL, CR/LF, SQL-ish and path-ish strings (and a number where text
    belongs) in each property of each admin API body: 100 naming the
    property, or accepted; never code 1."""
    values: list[object] = [
        "a\x00b",
        "\r\nX-Injected: 1",
        "'; DROP TABLE apps; --",
        ["a\x00b"],
        10**30,
    ]
    sent = 0
    for operation in OPERATIONS:
        if not isinstance(operation.body, Object):
            continue
        path = _concrete(operation.path, site.app.id, site.uid)
        for name in operation.body.properties:
            for value in values:
                body: dict[str, object] = {
                    "name": "n",
                    "username": "u1",
                    "password": "long enough pw 1",
                    "enabled": False,
                }
                body = {k: v for k, v in body.items() if k in operation.body.required}
                body[name] = value
                answer = await site.anonymous.request(
                    operation.method, path, content=json.dumps(body), headers=site.admin
                )
                assert_answered(answer)
                if answer.status_code >= 400:
                    assert answer.json()["error_code"] in (100, 114, 804), answer.text
                    if answer.json()["error_code"] == 100:
                        assert name in answer.json()["error_detail"], answer.text
                sent += 1
    assert sent > 50
    await assert_healthy(site)


INJECTED = [
    "%0d%0aX-Injected:%201",
    "%0aSet-Cookie:%20injected=1",
    "%0d%0a%0d%0a<html>",
    "%E5%98%8A",
]


async def test_cr_lf_in_redirect_uri_state_and_next_never_make_a_header(site: Site) -> None:
    """PROTOCOL §2: a redirect URI not registered is an error page, never a
    redirect; ``state`` goes back percent-encoded; ``next`` stays on the site."""
    params = authorize_params(site.app, Pkce.new())
    for injected in INJECTED:
        query = "&".join(f"{k}={quote(v)}" for k, v in params.items() if k != "redirect_uri")
        mismatch = await site.anonymous.get(
            f"/oauth/2.0/authorize?{query}&redirect_uri={quote(REDIRECT_URI)}{injected}"
        )
        assert_answered(mismatch)
        assert mismatch.status_code == 400
        assert "location" not in mismatch.headers
        # an error that redirects (unsupported response type) carries state back
        bad_type = {**params, "response_type": "token"}
        query = "&".join(f"{k}={quote(v)}" for k, v in bad_type.items() if k != "state")
        answer = await site.anonymous.get(f"/oauth/2.0/authorize?{query}&state=s{injected}")
        assert_answered(answer)
        assert answer.status_code in (302, 303), answer.text
        location = answer.headers["location"]
        assert location.startswith(REDIRECT_URI + "?")
        assert "\r" not in location and "\n" not in location and " " not in location
        returned = httpx.URL(location).params
        assert returned["error_code"] == "10008"
        assert returned["state"] == "s" + httpx.URL(f"/?x={injected}").params["x"]
    # the sign-in page's "next": a path on this site, whatever it carries
    for path in (
        f"/signin?next=/console{INJECTED[0]}",
        f"/signin?next={INJECTED[1]}//evil.example",
    ):
        site.anonymous.cookies.clear()
        page = await site.anonymous.get(path)
        assert_answered(page)
        signed_in = await site.anonymous.post(
            "/signin",
            params={"next": httpx.URL(path).params["next"]},
            data={"csrf_token": _csrf(page.text), "username": USERNAME, "password": PASSWORD},
        )
        assert_answered(signed_in)
        assert signed_in.status_code == 303, signed_in.text
        target = urlsplit(signed_in.headers["location"])
        assert target.netloc == "" and target.path.startswith("/"), target
    await assert_healthy(site)


async def test_cr_lf_in_a_registered_redirect_uri_is_refused(site: Site) -> None:
    for uri in ("https://client.example/cb\r\nX-Injected: 1", "https://client.example/\x00"):
        answer = await site.anonymous.patch(
            f"/admin/api/apps/{site.app.id}", json={"redirect_uris": [uri]}, headers=site.admin
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == 100
        assert "redirect_uris" in answer.json()["error_detail"]
    # the password grant with a NUL in the username is a failed sign-in
    token = await site.anonymous.post(
        "/oauth/2.0/token",
        content=b"grant_type=password&username=a%00b&password=x",
        headers={"Content-Type": FORM, **basic_auth(site.app)},
    )
    assert token.status_code == 400, token.text
    assert token.json()["error_code"] == 10002


OAUTH_PARAMS = {
    "/oauth/2.0/authorize": [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "lang",
    ],
    "/oauth/2.0/token": [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "scope",
        "username",
        "password",
        "client_id",
        "client_secret",
    ],
    "/oauth/2.0/revoke": ["token", "token_type_hint", "client_id", "client_secret"],
    "/oauth/2.0/introspect": ["token", "token_type_hint", "client_id", "client_secret"],
}


async def test_hostile_values_in_every_oauth_parameter(site: Site) -> None:
    """Each parameter of each OAuth endpoint, one at a time, with each
    hostile value among otherwise well-formed ones: an OAuth error (or an
    error page), never code 1; a redirect only to the registered URI."""
    pkce = Pkce.new()
    well_formed = {
        **authorize_params(site.app, pkce),
        "grant_type": "client_credentials",
        "username": USERNAME,
        "password": "wrong password",
        "code_verifier": pkce.verifier,
        "token": "t",
    }
    for path, names in OAUTH_PARAMS.items():
        for name in names:
            for raw in RAW_VALUES:
                others = dict(well_formed)
                if name in ("username", "password"):  # (each costs a password check)
                    others["grant_type"] = "password"
                pairs = b"&".join(
                    quote(k).encode() + b"=" + quote(v).encode()
                    for k, v in others.items()
                    if k != name
                )
                data = pairs + b"&" + name.encode() + b"=" + raw
                if path.endswith("authorize"):
                    if len(data) > 60_000:
                        continue  # longer than a URL may be (httpx refuses it)
                    answer = await site.anonymous.get(f"{path}?{data.decode('latin-1')}")
                else:
                    headers = {"Content-Type": FORM, **basic_auth(site.app)}
                    answer = await site.anonymous.post(path, content=data, headers=headers)
                assert_answered(answer)
                assert answer.status_code in (200, 302, 303, 400, 401, 429), answer.text
                if "location" in answer.headers:
                    assert answer.headers["location"].startswith(REDIRECT_URI + "?")
    await assert_healthy(site)


async def test_hostile_referer_and_forwarded_for_on_signed_calls(site: Site) -> None:
    """The allowlist checks (PROTOCOL §3.3, 6 and 7) read headers: whatever
    they hold, the answer is 0, 5, 7 or 114, never code 1."""
    await site.db.apps.update(
        site.canary.id,
        {"referer_allowlist": ["*.example.com"], "ip_allowlist": ["127.0.0.0/8", "::1"]},
    )
    api = ApiClient(site.anonymous, api_key=site.canary.api_key, secret=site.canary.secret)
    hostile = [
        b"\xff\xfe",
        b"http://\x00.example.com/",
        b"http://a.example.com\r\n",
        b"http://[::1/",
        b"http://a.example.com:99999/",
        b"//a.example.com",
        b"http://" + b"a." * 2000 + b"example.com/",
        b"javascript:alert(1)//a.example.com",
    ]
    for value in hostile:
        for header in ("Referer", "X-Forwarded-For"):
            answer = await api.call(
                "users.getInfo",
                {"uids": str(site.uid), "fields": "uid"},
                headers={header: value, "Referer": b"http://a.example.com/"}
                if header == "X-Forwarded-For"
                else {header: value},
            )
            assert_answered(answer)
            body = answer.json()
            code = body.get("error_code", 0) if isinstance(body, dict) else 0
            assert code in (0, 5, 7, 114), answer.text
