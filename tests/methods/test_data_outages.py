"""805 (PROTOCOL §4 "data"): PostgreSQL really broken — its connections
terminated with ``pg_terminate_backend`` mid-run, or refused altogether — and
the data store answers 805 (HTTP 503, Retry-After) after bounded retries,
never 1 or 800, with nothing half-written; afterwards calls succeed and the
earlier data is intact."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from tests.gateway.world import Backends, World
from tests.methods.data_calls import PER_USER, VALID_PARAMS, DataCalls, done, error, ok
from tests.methods.test_data import book_type
from tests.services import PG_HOST, PG_PORT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = $1 AND pid <> pg_backend_pid()"
)


@pytest.fixture
def backends() -> Backends:
    return Backends("postgres", "redis")


@pytest.fixture
async def calls(world: World) -> DataCalls:
    await world.configure(scopes=["basic", "data"])
    tokens = await world.issue(world.alice, "basic data")
    return DataCalls(world, world.client, tokens)


def database_name(world: World) -> str:
    return world.services.settings.database_url.rsplit("/", 1)[1]


@asynccontextmanager
async def connections_refused(name: str) -> AsyncIterator[None]:
    """PostgreSQL ends every connection to the database ``name`` and refuses
    new ones until the block ends."""
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await admin.fetchval(TERMINATE, name)
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def while_refused(calls: DataCalls, method: str, params: dict[str, str]) -> httpx.Response:
    """``method`` called while PostgreSQL refuses connections. The gateway
    knows the app (read just before and kept in process memory while it is
    unchanged), so the data store is the first to need the database."""
    ok(await calls.app("getObjectTypes"))
    async with connections_refused(database_name(calls.world)):
        return await calls.app(method, params)


async def test_805_while_postgres_refuses_connections_then_recovery(calls: DataCalls) -> None:
    await book_type(calls)
    props = json.dumps({"title": "kept", "pages": 1, "body": "本"})
    ok(await calls.app("createObject", {"obj_type": "book", "properties": props}))
    counter = {"obj_type": "book", "key": "hits", "prop_name": "pages"}
    ok(await calls.app("incHashValue", counter))

    for method, params in (
        ("createObject", {"obj_type": "book", "properties": props}),
        ("getObject", {"obj_id": "1"}),
        ("incHashValue", counter),
        ("getHashValue", counter),
    ):
        response = await while_refused(calls, method, params)
        body = error(response, 805, response.headers["X-Request-Id"])
        assert int(response.headers["Retry-After"]) >= 1
        assert body["error_msg"] == "A database error occurred. Please try again"

    # recovered: the next calls succeed, the earlier data is intact, and the
    # refused write left nothing behind (it did not even take an object id)
    assert ok(await calls.app("getObject", {"obj_id": "1"})) == {
        "obj_id": 1,
        "title": "kept",
        "pages": 1,
        "body": "本",
    }
    assert ok(await calls.app("createObject", {"obj_type": "book"})) == {"obj_id": 2}
    assert ok(await calls.app("incHashValue", counter)) == {"value": 2}


async def test_every_app_method_answers_805_while_postgres_refuses_connections(
    calls: DataCalls,
) -> None:
    """Every data method of the app's store, all at once while PostgreSQL
    refuses connections: 805 each. (Preferences are left out: their calls
    need the user's session from the database before the store is reached,
    and the gateway answers 2 for that.)"""
    await book_type(calls)
    done(await calls.app("defineAssociation", {"name": "likes", "assoc_type": "1"}))
    ok(await calls.app("createObject", {"obj_type": "book"}))
    methods = [method for method in VALID_PARAMS if method not in PER_USER]
    ok(await calls.app("getObjectTypes"))  # the app is in the gateway's memory
    async with connections_refused(database_name(calls.world)):
        responses = await asyncio.gather(
            *(
                calls.client.call(f"data.{method}", VALID_PARAMS[method], call_id=False)
                for method in methods
            )
        )
    for method, response in zip(methods, responses, strict=True):
        assert response.headers["X-Error-Code"] == "805", (method, response.text)
        error(response, 805, response.headers["X-Request-Id"])
    assert ok(await calls.app("getObject", {"obj_id": "1"}))["obj_id"] == 1


async def test_connections_killed_mid_run(calls: DataCalls) -> None:
    """Writes of several rows each (an object with three values, three
    preferences) and increments run while every connection of the server is
    terminated again and again: each call answers 0 or 805 (or 2 when the
    gateway itself could not read the credential), none 1 or 800; every
    acknowledged write is complete, no write is half there; afterwards calls
    succeed and the data from before is intact."""
    await book_type(calls)
    before = json.dumps({"title": "before", "pages": 7, "body": "前"})
    ok(await calls.app("createObject", {"obj_type": "book", "properties": before}))
    done(await calls.user("setUserPreference", {"pref_id": "0", "value": "before"}))
    counter = {"obj_type": "book", "key": "hits", "prop_name": "pages"}
    name = database_name(calls.world)

    stop = asyncio.Event()

    async def kill_again_and_again() -> int:
        admin = await asyncpg.connect(ADMIN_URL)
        killed = 0
        try:
            while not stop.is_set():
                killed += await admin.fetchval(TERMINATE, name)
                await asyncio.sleep(0.03)
        finally:
            await admin.close()
        return killed

    killer = asyncio.create_task(kill_again_and_again())
    outcomes: list[tuple[str, dict[str, str], httpx.Response]] = []
    try:
        for wave in range(6):
            planned: list[tuple[str, dict[str, str]]] = []
            for n in range(4):
                tag = f"w{wave}n{n}"
                props = json.dumps({"title": tag, "pages": wave * 10 + n, "body": tag * 3})
                planned.append(("createObject", {"obj_type": "book", "properties": props}))
                planned.append(("incHashValue", {**counter, "n": tag}))
            prefs = json.dumps({"1": f"w{wave}", "2": f"w{wave}", "3": f"w{wave}"})
            planned.append(("setUserPreferences", {"values": prefs}))
            sent = [
                calls.user(method, params)
                if method == "setUserPreferences"
                else calls.client.call(f"data.{method}", params, call_id=False)
                for method, params in planned
            ]
            responses = await asyncio.gather(*sent)
            outcomes += [(m, p, r) for (m, p), r in zip(planned, responses, strict=True)]
    finally:
        stop.set()
        killed = await killer
    assert killed > 0

    codes = Counter(int(r.headers["X-Error-Code"]) for _, _, r in outcomes)
    assert set(codes) <= {0, 2, 805}, codes
    for _, _, response in outcomes:
        assert response.status_code in (200, 503), response.text

    # recovered
    assert ok(await calls.app("getObject", {"obj_id": "1"}))["title"] == "before"
    created = [
        (json.loads(p["properties"]), ok(r)["obj_id"])
        for m, p, r in outcomes
        if m == "createObject" and r.status_code == 200
    ]
    for props, obj_id in created:  # every acknowledged write is there, whole
        assert ok(await calls.app("getObject", {"obj_id": str(obj_id)})) == {
            "obj_id": obj_id,
            **props,
        }
    last = max([obj_id for _, obj_id in created], default=1)
    for obj_id in range(2, last + 1):  # and no write is there in part
        response = await calls.app("getObject", {"obj_id": str(obj_id)})
        if response.status_code == 200:
            assert all(value != "" for value in ok(response).values()), response.text
        else:
            error(response, 803)
    increments = Counter(
        int(r.headers["X-Error-Code"]) for m, _, r in outcomes if m == "incHashValue"
    )
    value = ok(await calls.app("getHashValue", counter))["value"] or 0
    # 805 after the statement may have run: such an increment may have counted
    assert increments[0] <= value <= increments[0] + increments[805]
    prefs = ok(await calls.user("getUserPreferences"))
    assert prefs[0] == {"pref_id": 0, "value": "before"}
    assert len({p["value"] for p in prefs[1:]}) <= 1  # three values, from one write
    assert ok(await calls.app("incHashValue", counter)) == {"value": value + 1}
