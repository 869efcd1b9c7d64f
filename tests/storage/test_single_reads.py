"""The one-SELECT read path (``Sessions.first`` / ``Sessions.all``) on SQLite and
PostgreSQL: Core rows, autocommit (no transaction left open), latest committed
data — a revocation by another process is seen by the very next read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import bindparam, event, func, select, text

from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.models import AdminToken, User, utcnow
from tests.conftest import TEST_SECRET_KEY


@pytest.fixture
async def other(database_url: str) -> AsyncIterator[Database]:
    """A second Database on the same database: another process's view."""
    db = Database(database_url, SecretBox(TEST_SECRET_KEY))
    try:
        yield db
    finally:
        await db.close()


async def _issue(database: Database) -> tuple[int, str, str]:
    app = await database.apps.create(AppSettings(name="A"))
    user = await database.users.create("reader", "pw")
    grant = await database.tokens.create_grant(app.id, user.uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app.id, user.uid, "basic", 3600, 60, True)
    assert issued.session_key is not None
    return app.id, issued.access_token, issued.session_key


async def test_first_and_all_return_core_rows(database: Database) -> None:
    now = utcnow()
    async with database.sessions.write() as session:
        session.add_all(
            [AdminToken(token_hash=f"{n}" * 64, label=f"t{n}", created_at=now) for n in (1, 2, 3)]
        )
    by_label = select(AdminToken.id, AdminToken.label, AdminToken.created_at).where(
        AdminToken.label == bindparam("label")
    )
    row = await database.sessions.first(by_label, {"label": "t2"})
    assert row is not None
    assert row.label == "t2"
    assert row.created_at == now
    assert await database.sessions.first(by_label, {"label": "none"}) is None
    in_labels = select(AdminToken.label).where(
        AdminToken.label.in_(bindparam("labels", expanding=True))
    )
    rows = await database.sessions.all(
        in_labels.order_by(AdminToken.label), {"labels": ["t3", "t1"]}
    )
    assert [r.label for r in rows] == ["t1", "t3"]
    assert await database.sessions.all(select(User.id)) == []


async def test_revocation_is_seen_at_once_by_another_database(
    database: Database, other: Database
) -> None:
    app_id, token, session_key = await _issue(database)
    # The other instance reads first, so its pooled connection is warm.
    seen = await other.tokens.find_access_token(token)
    session = await other.tokens.find_session(session_key)
    assert seen is not None
    assert not seen.revoked
    assert session is not None
    assert not session.revoked

    assert await database.tokens.revoke_access_token(token, app_id)

    seen = await other.tokens.find_access_token(token)
    session = await other.tokens.find_session(session_key)
    assert seen is not None
    assert seen.revoked
    assert session is not None
    assert session.revoked


async def test_revoking_a_grant_and_deleting_an_app_are_seen_at_once(
    database: Database, other: Database
) -> None:
    app_id, token, _ = await _issue(database)
    record = await other.tokens.find_access_token(token)
    assert record is not None
    assert record.grant_id is not None
    assert (await other.apps.get(app_id)) is not None

    await database.tokens.revoke_grant(record.grant_id)
    again = await other.tokens.find_access_token(token)
    assert again is not None
    assert again.revoked

    await database.apps.delete(app_id)
    assert await other.tokens.find_access_token(token) is None
    deleted = await other.apps.get(app_id)
    assert deleted is not None
    assert deleted.status == "deleted"


async def test_profile_changes_are_seen_at_once(database: Database, other: Database) -> None:
    user = await database.users.create("changing", "pw")
    before = await other.users.get_many([user.uid])
    assert before[user.uid].display_name == ""
    await database.users.update(user.uid, {"display_name": "New", "profile_visibility": "private"})
    after = (await other.users.get_many([user.uid]))[user.uid]
    assert (after.display_name, after.private) == ("New", True)


async def test_get_many_with_many_uids(database: Database) -> None:
    now = utcnow()
    async with database.sessions.write() as session:
        session.add_all(
            [
                User(
                    username=f"u{n}", password_hash="x", created_at=now, profile_visibility="public"
                )
                for n in range(150)
            ]
        )
    everyone = await database.users.get_many(range(1, 1000))
    assert len(everyone) == 150
    uids = sorted(everyone)
    some = await database.users.get_many([uids[5], uids[0], uids[5], 999_999])
    assert sorted(some) == [uids[0], uids[5]]
    assert some[uids[5]].username == everyone[uids[5]].username
    assert await database.users.get_many([999_999]) == {}
    one = await database.users.get_many([uids[7]])
    assert one[uids[7]] == everyone[uids[7]] == await database.users.get(uids[7])


async def test_a_single_read_leaves_no_transaction_open(
    database: Database, other: Database
) -> None:
    """On SQLite an open read transaction would pin a WAL snapshot and block a
    full checkpoint; on PostgreSQL the statement runs as its own transaction."""
    _, token, _ = await _issue(database)
    assert await other.tokens.find_access_token(token) is not None
    if database.is_sqlite:
        async with database.engine.connect() as conn:
            busy, _, _ = (await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
        assert busy == 0
    else:
        busy = select(func.count()).select_from(
            text("pg_stat_activity WHERE datname = current_database() AND state <> 'idle'")
        )
        async with database.engine.connect() as conn:
            # Only this connection is busy: the other database's sits idle.
            assert (await conn.execute(busy)).scalar() == 1


async def test_single_reads_on_sqlite_emit_only_the_select(sqlite_database: Database) -> None:
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(
            " ".join(statement.split()[:2])
            if statement.startswith("BEGIN")
            else statement.split()[0]
        )

    event.listen(sqlite_database.engine.sync_engine, "before_cursor_execute", record)
    try:
        # Hot reads (statements built once) run on the shared reader: no pool.
        await sqlite_database.users.get(1)
        await sqlite_database.users.get_many([1, 2])
        assert statements == []
        # Any other single SELECT: a pooled connection, and nothing but the SELECT.
        await sqlite_database.sessions.first(select(User.id))
        await sqlite_database.sessions.all(select(User.id).where(User.id > 0))
        assert statements == ["SELECT", "SELECT"]
        statements.clear()
        async with sqlite_database.sessions.read() as session:
            await session.execute(select(User.id))
        assert statements == ["BEGIN", "SELECT"]
        statements.clear()
        await sqlite_database.users.create("writer", "pw")
        assert statements[:2] == ["BEGIN IMMEDIATE", "INSERT"]
    finally:
        event.remove(sqlite_database.engine.sync_engine, "before_cursor_execute", record)
