"""Alembic migrations: an empty database is brought to head on SQLite and on
PostgreSQL, a second run is a no-op, and the schema matches the models."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from openplatform.config import Settings
from openplatform.storage.engine import create_engine
from openplatform.storage.migrate import current_revision, head_revision, upgrade, upgrade_async
from openplatform.storage.models import Base
from tests.conftest import run_in_thread

EXPECTED_TABLES = {table.name for table in Base.metadata.sorted_tables} | {"alembic_version"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database that exists but has no tables: a SQLite path whose directory
    does not exist yet, or a new PostgreSQL database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'not' / 'yet' / 'openplatform.db'}"
        return
    import asyncpg

    server_url: str = request.getfixturevalue("postgres_url")
    base, _, _ = server_url.rpartition("/")
    name = f"openplatform_mig_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_in_thread(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}"
    finally:
        run_in_thread(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _schema(connection: Connection) -> tuple[set[str], list[object]]:
    tables = set(inspect(connection).get_table_names())
    differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return tables, list(differences)


async def schema_of(url: str) -> tuple[set[str], list[object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_schema)
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_table_and_matches_the_models(empty_database_url: str) -> None:
    assert await current_revision(empty_database_url) is None
    await upgrade_async(empty_database_url)
    tables, differences = await schema_of(empty_database_url)
    assert tables == EXPECTED_TABLES
    assert differences == []
    assert await current_revision(empty_database_url) == head_revision()


async def upgrade_keeps_a_row(url: str) -> bool:
    """Store an admin-token row, upgrade to head, and tell whether it is still there."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO admin_tokens (token_hash, label, created_at) "
                    "VALUES (:h, 'kept', CURRENT_TIMESTAMP)"
                ),
                {"h": "0" * 64},
            )
        await upgrade_async(url)
        async with engine.connect() as conn:
            labels = (await conn.execute(text("SELECT label FROM admin_tokens"))).scalars().all()
    finally:
        await engine.dispose()
    return list(labels) == ["kept"]


async def test_second_upgrade_is_a_no_op(empty_database_url: str) -> None:
    await upgrade_async(empty_database_url)
    assert await upgrade_keeps_a_row(empty_database_url)
    assert await current_revision(empty_database_url) == head_revision()


async def test_concurrent_upgrades_serialize(empty_database_url: str) -> None:
    """Several workers starting at once on an empty database all succeed."""
    await asyncio.gather(*(upgrade_async(empty_database_url) for _ in range(4)))
    tables, differences = await schema_of(empty_database_url)
    assert tables == EXPECTED_TABLES
    assert differences == []


def test_sync_upgrade_from_settings_creates_a_private_file(tmp_path: Path) -> None:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path / "data")})
    upgrade(settings)
    path = tmp_path / "data" / "openplatform.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    upgrade(settings)
    assert run_in_thread(current_revision(settings)) == head_revision()


def test_cli_db_upgrade(tmp_path: Path) -> None:
    env = {**os.environ, "OPENPLATFORM_DATA_DIR": str(tmp_path / "data")}
    env.pop("OPENPLATFORM_DATABASE_URL", None)
    for _ in range(2):
        result = subprocess.run(
            [str(Path(sys.executable).parent / "openplatform"), "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    url = f"sqlite:///{tmp_path / 'data' / 'openplatform.db'}"
    tables, differences = run_in_thread(schema_of(url))
    assert tables == EXPECTED_TABLES
    assert differences == []
