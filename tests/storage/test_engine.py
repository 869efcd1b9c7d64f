"""Engine set-up: SQLite pragmas, UTC timestamps, readiness ping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.engine import SQLITE_BUSY_TIMEOUT_MS
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
    assert (journal, foreign_keys, busy) == ("wal", 1, SQLITE_BUSY_TIMEOUT_MS)


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
