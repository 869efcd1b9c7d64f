"""The shared SQLite reader gives what SQLAlchemy's own path gives (types,
None, JSON, booleans, aware datetimes, IN lists), cannot write, reports an
unreachable file as an outage, and closes with the Database."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import bindparam, select, update

from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.models import App, User, utcnow
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture
async def database(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "reads.db"
    shutil.copyfile(sqlite_template, path)
    db = Database(f"sqlite:///{path}", SecretBox(TEST_SECRET_KEY))
    try:
        yield db
    finally:
        await db.close()


_APP = select(App.id, App.settings, App.owner_id, App.created_at, App.status, App.api_key).where(
    App.id == bindparam("app_id")
)
_USERS = select(User.id, User.disabled, User.email, User.created_at).where(
    User.id.in_(bindparam("uids", expanding=True)), User.sex == bindparam("sex")
)


async def test_rows_are_those_of_sqlalchemy(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="Typed", redirect_uris=("https://a.b/c",)))
    now = utcnow()
    async with database.sessions.write() as session:
        session.add_all(
            [
                User(username=f"u{n}", password_hash="x", created_at=now, disabled=n % 2 == 1)
                for n in range(1, 6)
            ]
        )
        await session.execute(update(User).where(User.id == 2).values(email="two@example.com"))
    fast = await database.sessions.first(_APP, {"app_id": app.id})
    async with database.sessions.read() as session:
        slow = (await session.execute(_APP, {"app_id": app.id})).one()
    assert fast is not None
    assert tuple(fast) == tuple(slow)
    assert fast.settings["redirect_uris"] == ["https://a.b/c"]
    assert fast.owner_id is None
    assert fast.created_at.tzinfo is not None
    for uids in ([3, 1, 2], [4], list(range(1, 200)), [2, 2, 2]):
        fast_rows = await database.sessions.all(_USERS, {"uids": uids, "sex": 0})
        async with database.sessions.read() as session:
            slow_rows = (await session.execute(_USERS, {"uids": uids, "sex": 0})).all()
        assert sorted(map(tuple, fast_rows)) == sorted(map(tuple, slow_rows))
    rows = await database.sessions.all(_USERS, {"uids": [1, 2], "sex": 0})
    assert {(row.id, row.disabled, row.email) for row in rows} == {
        (1, True, None),
        (2, False, "two@example.com"),
    }
    assert await database.sessions.all(_USERS, {"uids": [], "sex": 0}) == []
    assert await database.sessions.first(_APP, {"app_id": 999}) is None


async def test_the_reader_cannot_write(database: Database) -> None:
    await database.users.get(1)
    reader = database.sessions._reader
    assert reader is not None
    connection = await reader._connect()
    with pytest.raises(Exception, match="readonly"):
        await connection.execute("DELETE FROM users")


async def test_an_unreachable_file_is_an_outage(tmp_path: Path) -> None:
    missing = Database(f"sqlite:///{tmp_path / 'no' / 'such.db'}", SecretBox("k"))
    try:
        with pytest.raises(DatabaseUnavailable, match="database unavailable"):
            await missing.users.get(1)
        with pytest.raises(DatabaseUnavailable):
            await missing.apps.get_by_api_key("ak_x")
    finally:
        await missing.close()


async def test_the_reader_closes_with_the_database(database: Database) -> None:
    await database.users.get(1)
    reader = database.sessions._reader
    assert reader is not None
    connection = await reader._connect()
    await database.close()
    assert not connection._running
    # A read after close opens the reader again (as the engine's pool would).
    assert await database.users.get(1) is None


async def test_concurrent_reads_each_get_their_own_rows(database: Database) -> None:
    """Reads in flight together share one connection: none sees another's rows,
    and a write committed meanwhile is seen by every read that starts after it."""
    import asyncio

    now = utcnow()
    async with database.sessions.write() as session:
        session.add_all(
            [User(username=f"c{n}", password_hash="x", created_at=now) for n in range(1, 101)]
        )
    users = await asyncio.gather(*(database.users.get(uid) for uid in range(1, 101)))
    assert [user.username if user else None for user in users] == [f"c{n}" for n in range(1, 101)]
    batches = await asyncio.gather(
        *(database.users.get_many(range(start, start + 10)) for start in range(1, 92))
    )
    for start, batch in zip(range(1, 92), batches, strict=True):
        assert sorted(batch) == list(range(start, start + 10))
    await database.users.update(50, {"display_name": "changed"})
    again = await asyncio.gather(*(database.users.get(50) for _ in range(20)))
    assert {user.display_name if user else None for user in again} == {"changed"}
