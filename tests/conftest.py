"""Shared fixtures: the real services, parametrized backends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.redis_cluster import RedisCluster, cluster_tools_missing
from tests.services import (
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    port_open,
    service_unavailable,
)

if TYPE_CHECKING:
    from openplatform.storage.database import Database

T = TypeVar("T")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, created through the
    ``postgres`` user and dropped afterwards."""
    why = port_open(PG_HOST, PG_PORT)
    if why:
        service_unavailable("PostgreSQL", why)
    import asyncpg

    name = f"openplatform_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", database="postgres"
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        service_unavailable("PostgreSQL", str(exc))
    yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis server; tests use key prefixes of their own."""
    why = port_open(REDIS_HOST, REDIS_PORT)
    if why:
        service_unavailable("Redis", why)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real Redis Cluster (3 masters, 3 replicas) on free local ports,
    started once per test session. A test that kills a node starts it again
    and waits for the cluster to be whole (``wait_ok``)."""
    why = cluster_tools_missing()
    if why:
        service_unavailable("Redis Cluster", why)
    cluster = RedisCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    return redis_cluster.url


# --- storage: a migrated database per test, on SQLite and on PostgreSQL ------

TEST_SECRET_KEY = "openplatform-test-secret-key-not-for-production"


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop in another thread, so a
    sync fixture never disturbs the event loop pytest-asyncio manages."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per run; tests get copies."""
    from openplatform.storage.migrate import upgrade_async

    path = tmp_path_factory.mktemp("sqlite-template") / "openplatform.db"
    run_in_thread(upgrade_async(f"sqlite:///{path}"))
    assert not Path(f"{path}-wal").exists(), "the template's WAL was not checkpointed"
    return path


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> str:
    """The run's PostgreSQL database, migrated to head once."""
    from openplatform.storage.migrate import upgrade_async

    run_in_thread(upgrade_async(postgres_url))
    return postgres_url


async def _empty_postgres_tables(url: str) -> None:
    import asyncpg

    from openplatform.storage.models import Base

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET lock_timeout = '10s'")
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database (see :func:`fresh_database_url`)."""
    return fresh_database_url(request.param, request, tmp_path)


def fresh_database_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of ``kind`` (``sqlite`` or ``postgres``), as a
    user would write its URL: a fresh SQLite file (copied from a template), or
    the run's PostgreSQL database with every table emptied."""
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "openplatform.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("migrated_postgres_url")
    run_in_thread(_empty_postgres_tables(url))
    return url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """An open :class:`~openplatform.storage.database.Database` on
    ``database_url`` with a fixed secret key (``TEST_SECRET_KEY``)."""
    from openplatform.storage.crypto import SecretBox
    from openplatform.storage.database import Database

    db = Database(database_url, SecretBox(TEST_SECRET_KEY))
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def sqlite_database(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """An open Database on a fresh migrated SQLite file (for SQLite-only tests)."""
    from openplatform.storage.crypto import SecretBox
    from openplatform.storage.database import Database

    path = tmp_path / "sqlite-only.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite:///{path}", SecretBox(TEST_SECRET_KEY))
    try:
        yield db
    finally:
        await db.close()
