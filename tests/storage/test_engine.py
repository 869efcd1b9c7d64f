"""Engine set-up: SQLite pragmas, UTC timestamps, readiness ping, bounded lock
waits, what counts as an outage, one-statement writes."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, StatementError

from openplatform.config import DEFAULT_DB_TIMEOUT_S
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.engine import PG_LOCK_TIMEOUT_MS, is_outage
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.models import AdminToken


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'pragmas.db'}", SecretBox("k"))
    try:
        async with database.engine.connect() as conn:
            journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
            foreign_keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
            busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
    finally:
        await database.close()
    # a lock is waited for as long as any database wait: OPENPLATFORM_DB_TIMEOUT_S
    assert (journal, foreign_keys, busy) == ("wal", 1, DEFAULT_DB_TIMEOUT_S * 1000)


async def test_timestamps_come_back_aware_utc(database: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    moment = datetime(2030, 1, 2, 11, 4, 5, 123456, tzinfo=shanghai)
    async with database.sessions.write() as session:
        session.add(AdminToken(token_hash="a" * 64, label="t", created_at=moment))
    async with database.sessions.read() as session:
        stored = await session.scalar(select(AdminToken.created_at))
        later = await session.scalar(
            select(AdminToken.id).where(AdminToken.created_at > moment - timedelta(seconds=1))
        )
    assert stored == moment
    assert stored is not None
    assert stored.tzinfo is UTC
    assert stored.hour == 3
    assert later is not None


async def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        async with database.sessions.write() as session:
            session.add(AdminToken(token_hash="b" * 64, label="", created_at=datetime(2030, 1, 1)))


async def test_foreign_keys_are_enforced(database: Database) -> None:
    """Deleting an app's rows relies on foreign keys being on (SQLite: a pragma)."""
    from sqlalchemy.exc import IntegrityError

    from openplatform.storage.models import Consent, utcnow

    now = utcnow()
    with pytest.raises(IntegrityError):
        async with database.sessions.write() as session:
            session.add(Consent(user_id=999, app_id=999, scope="", created_at=now, updated_at=now))


async def test_ping(database: Database) -> None:
    await database.ping()


async def test_ping_raises_when_the_database_is_unreachable() -> None:
    unreachable = Database("postgresql://postgres@127.0.0.1:1/none", SecretBox("k"))
    try:
        with pytest.raises(ConnectionRefusedError):
            await unreachable.ping()
    finally:
        await unreachable.close()


async def test_a_postgres_connection_the_server_closed_is_replaced(postgres_url: str) -> None:
    """A pooled connection that the server ended (restart, pg_terminate_backend)
    is replaced on checkout: the next query works, on a new backend."""
    import asyncio

    import asyncpg

    database = Database(postgres_url, SecretBox("k"))
    try:
        async with database.engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        admin = await asyncpg.connect(postgres_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)  # the server's close reaches the pooled socket
        await database.ping()
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar() != pid
    finally:
        await database.close()


async def test_postgres_lock_waits_are_bounded(postgres_url: str) -> None:
    database = Database(postgres_url, SecretBox("k"))
    try:
        async with database.engine.connect() as conn:
            setting = (await conn.execute(text("SHOW lock_timeout"))).scalar()
    finally:
        await database.close()
    assert setting == f"{PG_LOCK_TIMEOUT_MS // 1000}s"


async def test_a_lock_wait_that_times_out_is_an_outage(migrated_postgres_url: str) -> None:
    """A lock wait PostgreSQL gave up on (55P03) is DatabaseUnavailable: the
    caller answers "try again", not an unknown error."""
    import asyncpg

    database = Database(migrated_postgres_url, SecretBox("k"))
    holder = await asyncpg.connect(migrated_postgres_url)
    try:
        await holder.execute("BEGIN; LOCK TABLE platform_settings IN ACCESS EXCLUSIVE MODE")

        async def read_locked_table() -> None:
            async with database.sessions.write() as session:
                await session.execute(text("SET LOCAL lock_timeout = '100ms'"))
                await session.execute(text("SELECT * FROM platform_settings"))

        with pytest.raises(DatabaseUnavailable, match="lock timeout"):
            await read_locked_table()
    finally:
        await holder.close()
        await database.close()


async def test_a_connection_killed_mid_transaction_is_an_outage(postgres_url: str) -> None:
    """pg_terminate_backend while a transaction is open: DatabaseUnavailable
    (asyncpg reports it as a plain client error on an invalidated connection),
    and the next transaction runs on a new connection."""
    import asyncpg

    database = Database(postgres_url, SecretBox("k"))
    admin = await asyncpg.connect(postgres_url)

    async def killed_mid_transaction() -> None:
        async with database.sessions.write() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar()
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            await session.execute(text("SELECT 1"))

    try:
        with pytest.raises(DatabaseUnavailable):
            await killed_mid_transaction()
        async with database.sessions.write() as session:
            assert (await session.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await admin.close()
        await database.close()


def test_is_outage_by_sqlstate() -> None:
    class Driver(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    def wrapped(sqlstate: str) -> DBAPIError:
        return DBAPIError("SELECT 1", None, Driver(sqlstate))

    for sqlstate in ("40001", "40P01", "55P03", "57P01", "53300", "08006", "55000"):
        assert is_outage(wrapped(sqlstate)), sqlstate
    for sqlstate in ("23505", "42P01", "22003"):
        assert not is_outage(wrapped(sqlstate)), sqlstate
    assert is_outage(ConnectionRefusedError())
    assert not is_outage(ValueError())


async def test_write_one_is_one_statement_in_autocommit(database: Database) -> None:
    """A data-changing statement through write_one is committed on its own
    (another connection sees it) and returns its RETURNING row."""
    now = datetime.now(UTC)
    async with database.sessions.write() as session:
        session.add(AdminToken(token_hash="w" * 64, label="before", created_at=now))
    changed = (
        update(AdminToken)
        .where(AdminToken.token_hash == "w" * 64)
        .values(label="after")
        .returning(AdminToken.label)
    )
    row = await database.sessions.write_one(changed)
    assert row is not None and row[0] == "after"
    label = select(AdminToken.label).where(AdminToken.token_hash == bindparam("h"))
    assert (await database.sessions.first(label, {"h": "w" * 64})) == ("after",)
    missing = update(AdminToken).where(AdminToken.id == -1).values(label="x")
    assert await database.sessions.write_one(missing.returning(AdminToken.id)) is None


def test_sqlite_outages_by_error_name(tmp_path: Path) -> None:
    """A locked SQLite file is an outage; a missing table is a bug."""
    path = tmp_path / "names.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    other = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as missing:
            other.execute("SELECT * FROM nope")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError) as locked:
            other.execute("SELECT * FROM t")
    finally:
        other.close()
        holder.close()
    assert is_outage(locked.value)
    assert is_outage(DBAPIError("SELECT", None, locked.value))
    assert not is_outage(missing.value)
    assert not is_outage(DBAPIError("SELECT", None, missing.value))
