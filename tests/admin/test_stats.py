"""``GET /admin/api/stats`` (PROTOCOL §5) and the per-process call counter
behind it, over SQLite and PostgreSQL: calls through the gateway are counted
per app, minute, method and error code, and several processes add up."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.config import Settings
from openplatform.gateway.call_counter import CallCounter, call_counter
from openplatform.services import Services
from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.errors import DatabaseUnavailable
from tests.admin.test_api import admin, assert_error, services
from tests.conftest import TEST_SECRET_KEY
from tests.gateway.client import ApiClient

__all__ = ["admin", "services"]

METHOD = "application.getPublicInfo"


def _services(database: Database, tmp_path: Path) -> Services:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    return Services(settings, database, MemorySharedState(prefix="t"), "http://testserver")


async def _api_calls(services: Services, app: dict[str, str], ok: int, bad_sig: int) -> None:
    """``ok`` successful calls and ``bad_sig`` calls answered 104, through the
    gateway of ``services`` (no admin token sent)."""
    transport = httpx.ASGITransport(app=create_app(services.settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        client = ApiClient(http, api_key=app["api_key"], secret=app["secret"])
        for _ in range(ok):
            response = await client.call(METHOD, {"application_id": str(app["app_id"])})
            assert response.headers["X-Error-Code"] == "0", response.text
        for _ in range(bad_sig):
            response = await client.call(
                METHOD, {"application_id": str(app["app_id"])}, secret="wrong"
            )
            assert response.headers["X-Error-Code"] == "104", response.text
        # Neither an unknown method nor an unknown app is counted for the app.
        await client.call("no.suchMethod")
        await ApiClient(http, api_key="ak_unknown", secret="x").call(METHOD)


def _counts(body: dict[str, object]) -> dict[tuple[str, int], int]:
    minutes = body["minutes"]
    assert isinstance(minutes, list)
    counts: dict[tuple[str, int], int] = {}
    for row in minutes:
        key = (row["method"], row["error_code"])
        counts[key] = counts.get(key, 0) + row["calls"]
    return counts


@pytest.fixture
async def made_app(admin: httpx.AsyncClient) -> dict[str, str]:
    response = await admin.post("/admin/api/apps", json={"name": "Counted"})
    assert response.status_code == 201
    app: dict[str, str] = response.json()
    return app


async def test_calls_per_method_and_error_code(
    admin: httpx.AsyncClient, services: Services, made_app: dict[str, str]
) -> None:
    await _api_calls(services, made_app, ok=3, bad_sig=2)
    assert call_counter(services).pending_calls == 5
    response = await admin.get("/admin/api/stats", params={"app_id": made_app["app_id"]})
    assert response.status_code == 200, response.text
    assert response.headers["X-Error-Code"] == "0"
    body = response.json()
    assert body["app_id"] == made_app["app_id"]
    assert call_counter(services).pending_calls == 0
    assert _counts(body) == {(METHOD, 0): 3, (METHOD, 104): 2}
    rows = body["minutes"]
    assert rows == sorted(rows, key=lambda r: (r["minute"], r["method"], r["error_code"]))
    assert all(r["minute"] % 60 == 0 and r["avg_latency_ms"] >= 0 for r in rows)
    # Read again: nothing is counted twice.
    again = await admin.get("/admin/api/stats", params={"app_id": made_app["app_id"]})
    assert _counts(again.json()) == {(METHOD, 0): 3, (METHOD, 104): 2}
    # A window without those minutes is empty.
    old = await admin.get(
        "/admin/api/stats", params={"app_id": made_app["app_id"], "since": 0, "until": 3599}
    )
    assert old.json()["minutes"] == [] and old.json()["latency"] == []
    # Latency per minute and method, every error code together.
    latency = body["latency"]
    assert sum(row["calls"] for row in latency) == 5
    assert {row["method"] for row in latency} == {METHOD}
    for row in latency:
        assert sum(row["buckets"]) == row["calls"]
        assert len(row["buckets"]) == len(body["latency_bounds_ms"]) + 1
        assert 0 <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]


async def test_two_processes_add_up_exactly(
    admin: httpx.AsyncClient,
    services: Services,
    made_app: dict[str, str],
    database_url: str,
    tmp_path: Path,
) -> None:
    other_db = Database(database_url, SecretBox(TEST_SECRET_KEY))
    try:
        other = _services(other_db, tmp_path / "other")
        await _api_calls(services, made_app, ok=3, bad_sig=2)
        await _api_calls(other, made_app, ok=4, bad_sig=1)
        assert call_counter(other).pending_calls == 5
        await call_counter(other).flush()
        await call_counter(services).flush()
    finally:
        await other_db.close()
    response = await admin.get("/admin/api/stats", params={"app_id": made_app["app_id"]})
    assert _counts(response.json()) == {(METHOD, 0): 7, (METHOD, 104): 3}


async def test_minutes_follow_the_clock(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="clocked"))
    now = [7_259.9]
    counter = CallCounter(database.call_stats, clock=lambda: now[0])
    counter.record(app.id, "users.getInfo", 0, 0.002)
    now[0] = 7_260.0
    counter.record(app.id, "users.getInfo", 0, 0.004)
    counter.record(app.id, "users.getInfo", 0, 0.006)
    counter.record(app.id, "users.getInfo", 110, 0.001)
    assert await counter.flush() == 3
    rows = await database.call_stats.in_range(app.id, 0, 10_000)
    assert [(r.minute, r.error_code, r.calls, r.avg_latency_ms) for r in rows] == [
        (7_200, 0, 1, 2.0),
        (7_260, 0, 2, 5.0),
        (7_260, 110, 1, 1.0),
    ]


async def test_a_failed_flush_keeps_the_counts(sqlite_template: Path, tmp_path: Path) -> None:
    """The database is unreachable (its directory is missing), then back."""
    ready = tmp_path / "ready.db"
    shutil.copyfile(sqlite_template, ready)
    async with Database(f"sqlite:///{ready}", SecretBox(TEST_SECRET_KEY)) as db:
        app = await db.apps.create(AppSettings(name="a"))
    later = tmp_path / "later" / "openplatform.db"
    async with Database(f"sqlite:///{later}", SecretBox(TEST_SECRET_KEY)) as db:
        counter = CallCounter(db.call_stats, clock=lambda: 600.0)
        counter.record(app.id, METHOD, 0, 0.001)
        counter.record(app.id, METHOD, 0, 0.001)
        with pytest.raises(DatabaseUnavailable):
            await counter.flush()
        assert counter.pending_calls == 2
        counter.record(app.id, METHOD, 0, 0.001)
        later.parent.mkdir()
        shutil.move(ready, later)
        assert await counter.flush() == 1
        assert counter.pending_calls == 0
        rows = await db.call_stats.in_range(app.id, 0, 10_000)
    assert [(r.minute, r.calls, r.latency_us_total) for r in rows] == [(600, 3, 3000)]


async def test_background_flush_and_flush_at_shutdown(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="a"))
    counter = CallCounter(database.call_stats, clock=lambda: 60.0, interval_s=0.01)
    counter.start()
    try:
        counter.record(app.id, METHOD, 0, 0.001)
        for _ in range(500):
            if counter.pending_calls == 0 and await database.call_stats.in_range(app.id, 0, 60):
                break
            await asyncio.sleep(0.01)
        assert counter.pending_calls == 0
    finally:
        await counter.stop()
    counter.record(app.id, METHOD, 0, 0.001)
    await counter.stop()  # stopped already: flushes what is left
    rows = await database.call_stats.in_range(app.id, 0, 60)
    assert [r.calls for r in rows] == [2]


async def test_the_application_lifespan_flushes_on_shutdown(
    database: Database, tmp_path: Path
) -> None:
    services = _services(database, tmp_path)
    app = await database.apps.create(AppSettings(name="a"))
    asgi = create_app(services.settings, services)
    async with asgi.router.lifespan_context(asgi):
        call_counter(services).record(app.id, METHOD, 0, 0.001)
    assert call_counter(services).pending_calls == 0
    assert [r.calls for r in await database.call_stats.in_range(app.id, 0, 2**40)] == [1]


async def test_errors(admin: httpx.AsyncClient, made_app: dict[str, str]) -> None:
    app_id = made_app["app_id"]
    anonymous = httpx.AsyncClient(transport=admin._transport, base_url="http://testserver")
    async with anonymous:
        response = await anonymous.get("/admin/api/stats", params={"app_id": app_id})
    assert_error(response, 401, 110)
    assert_error(await admin.get("/admin/api/stats", params={"app_id": 987654}), 404, 900)
    for params in (
        {},
        {"app_id": "abc"},
        {"app_id": "-1"},
        {"app_id": "1" * 30},
        {"app_id": app_id, "since": "yesterday"},
        {"app_id": app_id, "until": "1.5"},
        {"app_id": app_id, "since": 120, "until": 60},
    ):
        assert_error(await admin.get("/admin/api/stats", params=params), 400, 100)


async def test_deleting_an_app_deletes_its_stats(
    admin: httpx.AsyncClient, services: Services, made_app: dict[str, str]
) -> None:
    app_id = int(made_app["app_id"])
    await _api_calls(services, made_app, ok=2, bad_sig=0)
    await call_counter(services).flush()
    assert await services.database.call_stats.in_range(app_id, 0, 2**40) != []
    call_counter(services).record(app_id, METHOD, 0, 0.001)  # not yet written
    assert (await admin.delete(f"/admin/api/apps/{app_id}")).status_code == 204
    await call_counter(services).flush()
    assert await services.database.call_stats.in_range(app_id, 0, 2**40) == []
    assert_error(await admin.get("/admin/api/stats", params={"app_id": app_id}), 404, 900)
