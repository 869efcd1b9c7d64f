"""The aiosqlite driver with one trip to its thread per statement: the same
results as sqlite3 (rows, rowcount, lastrowid, RETURNING, executemany,
errors), transactions still committed and rolled back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError

from openplatform.storage.database import Database
from openplatform.storage.models import AdminToken, User, utcnow


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    """These tests are about the SQLite driver only."""
    return sqlite_database


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions sent to aiosqlite's thread, by name."""
    sent: list[str] = []
    original: Callable[..., Any] = aiosqlite.Connection._execute

    async def counting(
        self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return sent


async def _user(database: Database, name: str) -> None:
    async with database.sessions.write() as session:
        session.add(User(username=name, password_hash="x", created_at=utcnow()))


async def test_a_single_read_is_one_trip(database: Database, trips: list[str]) -> None:
    await _user(database, "warm")  # opens the pooled connection
    await database.users.get(1)  # and the shared reader's
    trips.clear()
    assert await database.sessions.first(select(User.id)) is not None  # pooled
    assert await database.users.get(1) is not None  # shared reader
    assert await database.users.get_many([1, 2]) != {}
    assert len(trips) == 3


async def test_a_write_transaction_is_a_trip_per_statement_and_commit(
    database: Database, trips: list[str]
) -> None:
    await _user(database, "warm")
    trips.clear()
    await _user(database, "second")
    assert len(trips) == 3  # BEGIN IMMEDIATE, INSERT, COMMIT


async def test_rowcount_lastrowid_returning_and_executemany(database: Database) -> None:
    now = utcnow()
    async with database.engine.begin() as conn:
        many = await conn.execute(
            insert(AdminToken),
            [{"token_hash": f"{n}" * 64, "label": "a", "created_at": now} for n in range(5)],
        )
        assert many.rowcount == 5
        one = await conn.execute(
            insert(AdminToken).values(token_hash="f" * 64, label="b", created_at=now)
        )
        assert one.lastrowid == 6
        assert one.inserted_primary_key == (6,)
        changed = await conn.execute(
            update(AdminToken).where(AdminToken.label == "a").values(label="c")
        )
        assert changed.rowcount == 5
        returned = await conn.execute(
            update(AdminToken)
            .where(AdminToken.label == "c")
            .values(label="d")
            .returning(AdminToken.id)
        )
        assert sorted(returned.scalars()) == [1, 2, 3, 4, 5]
    rows = await database.sessions.all(select(AdminToken.label).order_by(AdminToken.id))
    assert [row.label for row in rows] == ["d"] * 5 + ["b"]


async def test_a_failed_write_rolls_back_and_leaves_the_connection_clean(
    database: Database,
) -> None:
    await _user(database, "taken")

    async def insert_then_clash() -> None:
        async with database.sessions.write() as session:
            session.add(AdminToken(token_hash="e" * 64, label="lost", created_at=utcnow()))
            await session.flush()
            session.add(User(username="taken", password_hash="x", created_at=utcnow()))
            await session.flush()

    with pytest.raises(IntegrityError):
        await insert_then_clash()
    assert await database.sessions.all(select(AdminToken.id)) == []
    async with database.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, aiosqlite.Connection)
        assert not driver.in_transaction
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1


async def test_a_rolled_back_transaction_is_undone(database: Database) -> None:
    async with database.engine.connect() as conn:
        await conn.begin()
        await conn.execute(insert(AdminToken).values(token_hash="9" * 64, created_at=utcnow()))
        await conn.rollback()
    assert await database.sessions.all(select(AdminToken.id)) == []
