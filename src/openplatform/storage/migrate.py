"""Schema migrations with Alembic (``openplatform db upgrade``; the server runs
:func:`upgrade_async` at start, so an empty database is created on first run).

Alembic is configured here in code; ``alembic.ini`` beside this module only
serves developers running the ``alembic`` command (new revisions).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from openplatform.config import Settings, database_url_for_driver
from openplatform.storage.engine import create_engine

__all__ = [
    "alembic_config",
    "create_private_file",
    "current_revision",
    "head_revision",
    "sqlite_file",
    "upgrade",
    "upgrade_async",
]

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: serializes concurrent upgrades of one PostgreSQL database
# (several workers starting at once).
_PG_LOCK_ID = 0x6F70656E706C6174


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _database_url(target: Settings | str) -> str:
    return database_url_for_driver(target if isinstance(target, str) else target.database_url)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def create_private_file(path: Path) -> None:
    """Create the SQLite file (and its directory) readable by the owner only;
    SQLite gives its WAL and shared-memory files the same permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _switch_to_wal(path: Path, attempts: int = 50) -> None:
    """Put a SQLite file in WAL mode before any pool opens it. Two connections
    converting a new file at once can deadlock, and SQLite then answers
    "database is locked" at once instead of waiting: try again shortly."""
    for attempt in range(attempts):
        connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
        finally:
            connection.close()
        time.sleep(0.02)


def _run_upgrade(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade_async(target: Settings | str, revision: str = "head") -> None:
    """Bring the database of ``target`` (settings or URL) to ``revision``, in one
    transaction; a no-op when it is already there. A new SQLite file is created
    (with its directory) readable by the owner only."""
    url = _database_url(target)
    sqlite_path = sqlite_file(url)
    if sqlite_path is not None:
        create_private_file(sqlite_path)
        await asyncio.to_thread(_switch_to_wal, sqlite_path)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            # BEGIN IMMEDIATE on SQLite: concurrent upgrades run one after another.
            conn = await conn.execution_options(openplatform_write=True)
            async with conn.begin():
                await conn.run_sync(_run_upgrade, revision)
    finally:
        await engine.dispose()


def upgrade(target: Settings | str, revision: str = "head") -> None:
    """:func:`upgrade_async` for synchronous callers (the CLI); not from inside a
    running event loop."""
    asyncio.run(upgrade_async(target, revision))


async def current_revision(target: Settings | str) -> str | None:
    """The revision the database is at (None when it was never migrated; a
    SQLite file that does not exist is not created)."""
    url = _database_url(target)
    sqlite_path = sqlite_file(url)
    if sqlite_path is not None and not sqlite_path.exists():
        return None
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
