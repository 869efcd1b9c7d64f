"""A stalled dependency cannot hang a worker (issue 12, faults): PostgreSQL or
Redis behind a TCP proxy that stops forwarding (connections stay open,
nothing comes back) — every request that needs it answers 2 within its
timeout, requests that do not need it keep answering, and everything
recovers by itself once the proxy forwards again. SQLite's bound is its lock
wait: a write behind another process's write lock answers 2 in time too."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache import SharedState
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from openplatform.config import Settings
from openplatform.services import Services
from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from tests.conftest import TEST_SECRET_KEY, fresh_database_url
from tests.gateway.client import ApiClient
from tests.tcp_proxy import TcpProxy

TIMEOUT_S = 1.0
# One database operation (a statement or a transaction, waiting for a pooled
# connection included) is bounded by the timeout; so is a Redis call.
BOUND_S = TIMEOUT_S + 0.5


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url="sqlite:///unused",
        cache_url="memory://",
        issuer="http://testserver",
        db_timeout_s=TIMEOUT_S,
    )


async def _client(
    database: Database, state: SharedState, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    services = Services(_settings(tmp_path), database, state, "http://testserver")
    transport = httpx.ASGITransport(app=create_app(services.settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await request
    return response, time.perf_counter() - started


@pytest.mark.postgres
async def test_stalled_postgresql_answers_2_within_the_timeout(
    migrated_postgres_url: str, tmp_path: Path
) -> None:
    host_port = migrated_postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    url = migrated_postgres_url.replace(host_port, f"127.0.0.1:{proxy.port}")
    database = Database(url, SecretBox(TEST_SECRET_KEY), timeout_s=TIMEOUT_S)
    try:
        app = await database.apps.create(AppSettings(name="Stall"))
        async for http in _client(database, MemorySharedState("stall"), tmp_path):
            api = ApiClient(http, api_key=app.api_key, secret=app.secret)
            assert (await http.get("/readyz")).status_code == 200
            # A running server: its maintenance state was read once already.
            await api.call("application.getPublicInfo", {"application_api_key": "x"})
            proxy.stall()
            calls = [
                http.get("/rest/2.0/users.getLoggedInUser", headers={"Authorization": "Bearer t"}),
                http.post(
                    "/oauth/2.0/token",
                    data={"grant_type": "client_credentials"},
                    auth=(app.api_key, app.secret),
                ),
                http.get("/readyz"),
                # more at once than the pool holds: waiting for a connection is bounded too
                *(
                    http.get("/rest/2.0/users.getInfo", headers={"Authorization": f"Bearer {i}"})
                    for i in range(24)
                ),
            ]
            healthz = await asyncio.wait_for(http.get("/healthz"), 1.0)
            assert healthz.status_code == 200  # a request without the database still answers
            results = await asyncio.gather(*(timed(call) for call in calls))
            for response, took in results:
                assert took < BOUND_S, (response.request.url, took)
                assert response.status_code == 503, response.text
                assert response.headers["X-Error-Code"] == "2"
                assert response.headers["Retry-After"] == "5"
            proxy.resume()
            recovered = await api.call("application.getPublicInfo", {"application_api_key": "x"})
            assert recovered.headers["X-Error-Code"] != "2", recovered.text
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await database.close()
        await proxy.close()


@pytest.mark.redis
async def test_stalled_redis_answers_2_within_the_timeout(
    redis_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = await TcpProxy(host, int(port)).start()
    state = RedisSharedState(
        f"redis://127.0.0.1:{proxy.port}/0?socket_timeout={TIMEOUT_S}", prefix="stall"
    )
    database = Database(fresh_database_url("sqlite", request, tmp_path), SecretBox(TEST_SECRET_KEY))
    try:
        app = await database.apps.create(AppSettings(name="Stall"))
        async for http in _client(database, state, tmp_path):
            api = ApiClient(http, api_key=app.api_key, secret=app.secret)
            info = {"application_api_key": app.api_key}
            assert (await api.call("application.getPublicInfo", info)).status_code == 200
            proxy.stall()
            results = await asyncio.gather(
                *(timed(api.call("application.getPublicInfo", info)) for _ in range(5)),
                timed(http.get("/readyz")),
            )
            for response, took in results:
                assert took < BOUND_S, (response.request.url, took)
                assert response.status_code == 503, response.text
                assert response.headers["X-Error-Code"] == "2"
            proxy.resume()
            assert (await api.call("application.getPublicInfo", info)).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await state.close()
        await database.close()
        await proxy.close()


async def test_sqlite_write_behind_a_held_lock_answers_2_within_the_timeout(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = fresh_database_url("sqlite", request, tmp_path)
    database = Database(url, SecretBox(TEST_SECRET_KEY), timeout_s=TIMEOUT_S)
    other = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        app = await database.apps.create(AppSettings(name="Locked"))
        async for http in _client(database, MemorySharedState("lock"), tmp_path):
            other.execute("BEGIN IMMEDIATE")  # another process writes and does not let go
            token, took = await timed(
                http.post(
                    "/oauth/2.0/token",
                    data={"grant_type": "client_credentials"},
                    auth=(app.api_key, app.secret),
                )
            )
            assert took < TIMEOUT_S + 1.0
            assert token.status_code == 503, token.text
            assert token.headers["X-Error-Code"] == "2"
            other.execute("ROLLBACK")
            again = await http.post(
                "/oauth/2.0/token",
                data={"grant_type": "client_credentials"},
                auth=(app.api_key, app.secret),
            )
            assert again.status_code == 200, again.text
    finally:
        other.close()
        await database.close()
