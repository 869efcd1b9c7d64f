"""PROTOCOL §2 sign-in limits as users meet them: only failed password checks
count (login page and password grant alike), a success clears the account's
failures, both limits and windows are settings, 0 turns a limit off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.storage.apps import AppRecord, AppSettings
from tests.cache.conftest import FakeClock
from tests.oauth.browser import find_form
from tests.oauth.conftest import (
    ISSUER,
    PASSWORD,
    REDIRECT_URI,
    USERNAME,
    make_services,
    make_settings,
)
from tests.oauth.flows import AUTHORIZE, TOKEN, Pkce, authorize_params, basic_auth

Server = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, AppRecord]]]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Server:
    """An app (password grant allowed) and its users on a server whose
    settings the test chooses; the client's address is 127.0.0.1, a trusted
    proxy whose ``X-Forwarded-For`` names other addresses."""

    @asynccontextmanager
    async def serve(
        clock: FakeClock | None = None, **env: str
    ) -> AsyncIterator[tuple[httpx.AsyncClient, AppRecord]]:
        settings = make_settings(database_url, tmp_path, TRUSTED_PROXIES="127.0.0.1", **env)
        services = make_services(settings)
        if clock is not None:
            await services.shared_state.close()
            services.shared_state = MemorySharedState(clock=clock)
        transport = httpx.ASGITransport(app=create_app(settings, services))
        try:
            db = services.database
            app = await db.apps.create(
                AppSettings.from_mapping(
                    {
                        "name": "Limits",
                        "redirect_uris": [REDIRECT_URI],
                        "scopes": ["basic", "email"],
                        "grants": ["authorization_code", "refresh_token", "password"],
                    }
                )
            )
            await db.users.create(USERNAME, PASSWORD)
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
                yield http, app
        finally:
            await services.close()

    return serve


async def login(
    http: httpx.AsyncClient, app: AppRecord, username: str, password: str, ip: str = "10.9.8.7"
) -> httpx.Response:
    """One fresh browser's sign-in on the login page."""
    headers = {"X-Forwarded-For": ip}
    http.cookies.clear()
    page = await http.get(AUTHORIZE, params=authorize_params(app, Pkce.new()), headers=headers)
    assert page.status_code == 200, (page.status_code, page.headers, page.text)
    form = find_form(page.text)
    data = dict(form.data(username=username, password=password))
    return await http.post(form.action, data=data, headers=headers)


async def password_grant(
    http: httpx.AsyncClient, app: AppRecord, username: str, password: str, ip: str = "10.9.8.7"
) -> httpx.Response:
    data = {"grant_type": "password", "username": username, "password": password}
    return await http.post(TOKEN, data=data, headers={**basic_auth(app), "X-Forwarded-For": ip})


def signed_in(response: httpx.Response) -> bool:
    """The login page let the user through (on to consent, or a redirect)."""
    return response.status_code in (200, 302, 303) and "op_session" in response.headers.get(
        "set-cookie", ""
    )


async def test_thirty_successful_sign_ins_within_a_minute_all_succeed(server: Server) -> None:
    async with server() as (http, app):
        for _ in range(15):
            assert signed_in(await login(http, app, USERNAME, PASSWORD))
        for _ in range(15):
            response = await password_grant(http, app, USERNAME, PASSWORD)
            assert response.status_code == 200, response.text


async def test_eleven_failures_lock_the_account_until_it_is_time_again(server: Server) -> None:
    clock = FakeClock()  # the limits' time passes only when the test says so
    async with server(clock, LOGIN_ACCOUNT_WINDOW_S="600") as (http, app):
        for i in range(10):  # login page and password grant share the counters
            if i % 2:
                assert (await login(http, app, USERNAME, "guess")).status_code == 401
            else:
                assert (await password_grant(http, app, USERNAME, "guess")).json()[
                    "error_code"
                ] == 10002
        eleventh = await login(http, app, USERNAME, "guess")
        assert eleventh.status_code == 429
        assert eleventh.headers["x-error-code"] == "4"
        assert int(eleventh.headers["retry-after"]) > 0
        right = await login(http, app, USERNAME, PASSWORD)
        assert right.status_code == 429
        assert int(right.headers["retry-after"]) > 0
        granted = await password_grant(http, app, USERNAME, PASSWORD)
        assert granted.json()["error_code"] == 10000
        assert int(granted.headers["retry-after"]) > 0
        assert int(granted.headers["retry-after"]) == 60  # GCRA: a slot every 600/10 s
        clock.advance(59)
        assert (await login(http, app, USERNAME, PASSWORD)).status_code == 429
        clock.advance(1)
        assert signed_in(await login(http, app, USERNAME, PASSWORD))
        # the success cleared the account's failures: ten more wrong guesses go through
        for _ in range(10):
            assert (await login(http, app, USERNAME, "guess")).status_code == 401


async def test_a_hundred_failures_from_one_address_close_it_not_others(server: Server) -> None:
    async with server(FakeClock()) as (http, app):
        for i in range(100):
            wrong = await password_grant(http, app, f"user{i}", "guess", ip="192.0.2.50")
            assert wrong.json()["error_code"] == 10002
        assert (await login(http, app, USERNAME, PASSWORD, ip="192.0.2.50")).status_code == 429
        assert signed_in(await login(http, app, USERNAME, PASSWORD, ip="192.0.2.51"))


@pytest.mark.parametrize(
    ("env", "user_of", "failures"),
    [
        ({"LOGIN_FAILURES_PER_ACCOUNT": "0"}, lambda i: USERNAME, 30),
        ({"LOGIN_FAILURES_PER_IP": "0"}, lambda i: f"user{i}", 120),
    ],
)
async def test_zero_turns_a_limit_off(
    server: Server, env: dict[str, str], user_of: Callable[[int], str], failures: int
) -> None:
    async with server(**env) as (http, app):
        for i in range(failures):
            wrong = await password_grant(http, app, user_of(i), "guess")
            assert wrong.json()["error_code"] == 10002
        assert signed_in(await login(http, app, USERNAME, PASSWORD))
