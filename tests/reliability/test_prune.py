"""Housekeeping (issue 12): expired and revoked credentials and old call
statistics deleted in bounded batches, under a lease so that one process at
a time prunes — on SQLite and PostgreSQL, the lease on memory and Redis.
What is live, or ended less than the margin ago, stays and keeps working."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Connection

from openplatform.app import create_app
from openplatform.cache import SharedState, SharedStateUnavailable
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from openplatform.config import Settings
from openplatform.gateway.call_counter import CallCounter
from openplatform.housekeeping import LEASE, Housekeeping
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.models import (
    AccessToken,
    AuthorizationCode,
    Grant,
    RefreshToken,
    utcnow,
)
from openplatform.storage.prune import Pruner, PruneReport
from openplatform.storage.tokens import IssuedTokens
from tests.conftest import TEST_SECRET_KEY, fresh_database_url
from tests.gateway.client import ApiClient
from tests.gateway.world import add_user
from tests.oauth.conftest import OAuthWorld, world
from tests.oauth.flows import basic_auth, refresh, tokens_for
from tests.services import REDIS_HOST, REDIS_PORT
from tests.test_cli import run_cli

__all__ = ["world"]  # the OAuth world fixture, over SQLite and PostgreSQL

MARGIN = timedelta(days=7)
LONG_AGO = timedelta(days=8)  # ended more than the margin ago: due
LATELY = timedelta(days=6)  # ended less than the margin ago: kept
KINDS = (
    "access_tokens",
    "session_keys",
    "refresh_tokens",
    "authorization_codes",
    "grants",
    "call_stats",
    "call_latency",
)


def counts(**nonzero: int) -> dict[str, int]:
    return {kind: nonzero.get(kind, 0) for kind in KINDS}


@dataclass
class Seeded:
    database: Database
    app: AppRecord
    uid: int

    async def issue(self, *, session: bool = True) -> IssuedTokens:
        """A grant with an access token (+ session key) and a refresh token."""
        tokens = self.database.tokens
        grant = await tokens.create_grant(self.app.id, self.uid, "basic", "authorization_code")
        return await tokens.issue(grant, self.app.id, self.uid, "basic", 3600, 86400, session)

    async def set(self, model: type[object], condition: object, **values: object) -> None:
        async with self.database.sessions.write() as session:
            await session.execute(update(model).where(condition).values(**values))  # type: ignore[arg-type]

    async def end(self, issued: IssuedTokens, how: str, ago: timedelta) -> None:
        """The grant's tokens expired (or were revoked) ``ago``; the code it
        came from expired then too, and the grant is as old as that."""
        when = utcnow() - ago
        column = "expires_at" if how == "expired" else "revoked_at"
        for model in (AccessToken, RefreshToken):
            await self.set(model, model.grant_id == issued.grant_id, **{column: when})
        await self.set(
            AuthorizationCode, AuthorizationCode.grant_id == issued.grant_id, expires_at=when
        )
        await self.set(Grant, Grant.id == issued.grant_id, created_at=when - timedelta(hours=1))

    async def rows(
        self, model: type[AccessToken | RefreshToken | AuthorizationCode | Grant]
    ) -> int:
        async with self.database.sessions.read() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
async def seeded(database: Database) -> Seeded:
    app = await database.apps.create(AppSettings(name="Prune test app"))
    user = await add_user(database, "alice")
    return Seeded(database, app, user.uid)


def pruner(database: Database, **options: object) -> Pruner:
    return Pruner(database.sessions, margin=MARGIN, **options)  # type: ignore[arg-type]


async def test_what_ended_long_ago_goes_and_everything_else_stays(seeded: Seeded) -> None:
    tokens = seeded.database.tokens
    live = await seeded.issue()
    expired_long_ago = await seeded.issue()
    revoked_long_ago = await seeded.issue(session=False)
    expired_lately = await seeded.issue()
    revoked_lately = await seeded.issue()
    await seeded.end(expired_long_ago, "expired", LONG_AGO)
    await seeded.end(revoked_long_ago, "revoked", LONG_AGO)
    await seeded.end(expired_lately, "expired", LATELY)
    await seeded.end(revoked_lately, "revoked", LATELY)
    # the live grant is old too: its live tokens keep it
    await seeded.set(Grant, Grant.id == live.grant_id, created_at=utcnow() - LONG_AGO)
    # a refresh token rotated long ago but not expired: kept, reuse is still detected
    rotated = await seeded.issue()
    await seeded.set(
        RefreshToken, RefreshToken.grant_id == rotated.grant_id, rotated_at=utcnow() - LONG_AGO
    )
    # a grant with nothing left in it, made long ago; and a new one, empty as yet
    orphan = await tokens.create_grant(seeded.app.id, seeded.uid, "basic", "password")
    await seeded.set(Grant, Grant.id == orphan, created_at=utcnow() - LONG_AGO)
    young = await tokens.create_grant(seeded.app.id, seeded.uid, "basic", "password")
    # codes: expired long ago (after it was used), expired lately, live
    codes = []
    for ago in (LONG_AGO, LATELY, None):
        codes.append(
            await tokens.create_code(seeded.app.id, seeded.uid, None, "basic", None, None, 600)
        )
        if ago is not None:
            newest = select(func.max(AuthorizationCode.id)).scalar_subquery()
            await seeded.set(
                AuthorizationCode,
                AuthorizationCode.id == newest,
                expires_at=utcnow() - ago,
                used_at=utcnow() - ago,
            )

    report = await pruner(seeded.database).prune()

    assert report.counts() == counts(
        access_tokens=2, session_keys=1, refresh_tokens=2, authorization_codes=1, grants=3
    )
    assert report.complete
    assert await seeded.rows(AccessToken) == 4
    assert await seeded.rows(RefreshToken) == 4
    assert await seeded.rows(AuthorizationCode) == 2
    assert await seeded.rows(Grant) == 5  # live, lately ×2, rotated, young
    for gone in (expired_long_ago, revoked_long_ago):
        assert await tokens.find_access_token(gone.access_token) is None
        assert gone.refresh_token is not None
        assert await tokens.find_refresh_token(gone.refresh_token) is None
    record = await tokens.find_access_token(live.access_token)
    assert record is not None and not record.revoked and not record.expired()
    assert live.session_key is not None
    session = await tokens.find_session(live.session_key)
    assert session is not None and session.session_secret == live.session_secret
    lately = await tokens.find_access_token(expired_lately.access_token)
    assert lately is not None and lately.expired()  # still says 111, not 110
    revoked = await tokens.find_access_token(revoked_lately.access_token)
    assert revoked is not None and revoked.revoked
    assert rotated.refresh_token is not None
    kept = await tokens.find_refresh_token(rotated.refresh_token)
    assert kept is not None and kept.rotated
    async with seeded.database.sessions.read() as db:
        grants = set((await db.scalars(select(Grant.id))).all())
    assert young in grants and orphan not in grants

    assert (await pruner(seeded.database).prune()).counts() == counts()  # nothing left due


async def test_each_batch_is_one_bounded_committed_transaction(seeded: Seeded) -> None:
    for _ in range(10):
        await seeded.end(await seeded.issue(session=False), "expired", LONG_AGO)
    deletes: list[str] = []

    def count_deletes(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM ACCESS_TOKENS"):
            deletes.append(statement)

    engine = seeded.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count_deletes)
    seen: list[tuple[str, int, int]] = []

    async def between_batches(kind: str, deleted: int) -> bool:
        # read from another connection: what the batch deleted is committed
        seen.append((kind, deleted, await seeded.rows(AccessToken)))
        return True

    try:
        report = await pruner(seeded.database, batch_rows=3).prune(between_batches)
    finally:
        event.remove(engine, "before_cursor_execute", count_deletes)
    tokens = [(deleted, left) for kind, deleted, left in seen if kind == "access_tokens"]
    # 3 + 3 + 3 + 1 by expiry, then one batch that finds none revoked
    assert tokens == [(3, 7), (3, 4), (3, 1), (1, 0), (0, 0)]
    assert len(deletes) == 5
    assert report.access_tokens == 10 and report.refresh_tokens == 10 and report.grants == 10
    assert all(deleted <= 3 for _, deleted, _ in seen)


async def test_minutes_past_the_stats_retention_go(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="a"))
    now = [10 * 86_400.0]
    counter = CallCounter(database.call_stats, clock=lambda: now[0])
    for day in (1, 7, 8, 9, 10):
        now[0] = day * 86_400.0
        counter.record(app.id, "users.getInfo", 0, 0.001)
    await counter.flush()
    day_10 = datetime.fromtimestamp(10 * 86_400, UTC)
    kept_forever = await pruner(database, clock=lambda: day_10).prune()
    assert kept_forever.counts() == counts()  # retention 0: kept forever

    report = await pruner(
        database, clock=lambda: day_10, stats_retention_days=2, batch_rows=1
    ).prune()
    assert report.counts() == counts(call_stats=2, call_latency=2)  # days 1 and 7
    kept = await database.call_stats.in_range(app.id, 0, 11 * 86_400)
    assert [row.minute // 86_400 for row in kept] == [8, 9, 10]
    latency = await database.call_stats.latency_in_range(app.id, 0, 11 * 86_400)
    assert [row.minute // 86_400 for row in latency] == [8, 9, 10]


@pytest.fixture
def postgres_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database_url("postgres", request, tmp_path)


@pytest.mark.postgres
async def test_rows_an_api_transaction_holds_are_left_for_the_next_pass(
    postgres_database_url: str,
) -> None:
    """PostgreSQL: the pass never waits for the API's row locks (a
    revocation under way): it skips those rows. (SQLite has one writer.)"""
    database = Database(postgres_database_url, SecretBox(TEST_SECRET_KEY))
    try:
        app = await database.apps.create(AppSettings(name="a"))
        seeded = Seeded(database, app, (await add_user(database, "dave")).uid)
        held, free = await seeded.issue(), await seeded.issue()
        for issued in (held, free):
            await seeded.end(issued, "expired", LONG_AGO)
        empty = await database.tokens.create_grant(app.id, seeded.uid, "basic", "password")
        await seeded.set(Grant, Grant.id == empty, created_at=utcnow() - LONG_AGO)
        async with database.sessions.write() as session:
            await session.execute(
                select(AccessToken.id)
                .where(AccessToken.grant_id == held.grant_id)
                .with_for_update()
            )
            await session.execute(select(Grant.id).where(Grant.id == empty).with_for_update())
            # without SKIP LOCKED this would wait out the lock timeout and fail
            first = await asyncio.wait_for(pruner(database).prune(), 60)
        assert first.counts() == counts(access_tokens=1, session_keys=1, refresh_tokens=2, grants=1)
        second = await pruner(database).prune()
        assert second.counts() == counts(access_tokens=1, session_keys=1, grants=2)
    finally:
        await database.close()


# --- what clients see after a prune -------------------------------------------


async def test_live_credentials_still_answer_after_a_prune(world: OAuthWorld) -> None:
    body = await tokens_for(world.http, world.app)
    await world.db.apps.update(world.app.id, {"refresh_reuse_grace_s": 0})
    rotated = await refresh(world.http, world.app, str(body["refresh_token"]))
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    for _ in range(3):  # tokens of other grants, ended long ago
        ended = await tokens_for(world.http, world.app)
        stored = await world.db.tokens.find_access_token(str(ended["access_token"]))
        assert stored is not None and stored.grant_id is not None
        seeded = Seeded(world.db, world.app, world.uid)
        await seeded.end(_grant(stored.grant_id), "expired", LONG_AGO)

    keeper = Housekeeping(world.db, world.services.shared_state, margin=MARGIN)
    report = await keeper.prune_once()
    assert report is not None
    assert report.counts() == counts(
        access_tokens=3, session_keys=3, refresh_tokens=3, authorization_codes=3, grants=3
    )

    client = ApiClient(world.http, api_key=world.app.api_key, secret=world.app.secret)
    answer = await client.call("users.getLoggedInUser", {"access_token": fresh["access_token"]})
    assert answer.headers["x-error-code"] == "0", answer.text
    assert answer.json() == {"uid": world.uid}
    by_session = await client.call(
        "users.getLoggedInUser",
        secret=str(fresh["session_secret"]),
        session_key=str(fresh["session_key"]),
    )
    assert by_session.headers["x-error-code"] == "0", by_session.text
    info = await world.http.post(
        "/oauth/2.0/introspect",
        data={"token": fresh["access_token"]},
        headers=basic_auth(world.app),
    )
    assert info.json()["active"] is True
    # the rotated refresh token was kept: presenting it again still revokes the family
    reused = await refresh(world.http, world.app, str(body["refresh_token"]))
    assert reused.json()["error_code"] == 10002
    gone = await client.call("users.getLoggedInUser", {"access_token": fresh["access_token"]})
    assert gone.headers["x-error-code"] == "110"


def _grant(grant_id: int) -> IssuedTokens:
    """Enough of an issue to name its grant (for :meth:`Seeded.end`)."""
    return IssuedTokens("", 0, utcnow(), "", None, None, None, None, grant_id)


# --- one at a time ---------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def two_states(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[SharedState, SharedState]]:
    """What two processes would share: one memory state, or two clients of one Redis."""
    if request.param == "memory":
        memory = MemorySharedState()
        yield memory, memory
        await memory.close()
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"optest-{uuid.uuid4().hex[:12]}"
    first, second = RedisSharedState(url, prefix), RedisSharedState(url, prefix)
    yield first, second
    for state in (first, second):
        await state.close()


async def test_two_concurrent_prunes_exactly_one_runs(
    seeded: Seeded, two_states: tuple[SharedState, SharedState]
) -> None:
    for _ in range(6):
        await seeded.end(await seeded.issue(), "revoked", LONG_AGO)
    keepers = [
        Housekeeping(seeded.database, state, batch_rows=2, margin=MARGIN) for state in two_states
    ]
    reports = await asyncio.gather(*(keeper.prune_once() for keeper in keepers))
    ran = [report for report in reports if report is not None]
    assert len(ran) == 1
    assert ran[0].counts() == counts(access_tokens=6, session_keys=6, refresh_tokens=6, grants=6)
    # the lease was given back: the next pass runs (and finds nothing)
    again = await keepers[1].prune_once()
    assert again is not None and again.counts() == counts()


class _LosingState(MemorySharedState):
    """A lease that another process takes over after the first renewal."""

    async def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        await super().release_lease(name, owner)
        await super().acquire_lease(name, "someone-else", ttl_s)
        return False


async def test_a_pass_that_loses_its_lease_stops_at_once(seeded: Seeded) -> None:
    for _ in range(4):
        await seeded.end(await seeded.issue(), "expired", LONG_AGO)
    state = _LosingState()
    keeper = Housekeeping(seeded.database, state, batch_rows=2, margin=MARGIN)
    report = await keeper.prune_once()
    assert report is not None and not report.complete
    assert report.counts() == counts()  # the first batch (codes) found none; then it stopped
    assert report.batches == 1
    assert not await state.acquire_lease(LEASE, "me", 30)  # the other owner's, untouched


# --- the background task -------------------------------------------------------------


class _FlakyState(MemorySharedState):
    """Unreachable for the first ``failures`` lease attempts."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        if self.failures:
            self.failures -= 1
            raise SharedStateUnavailable("Redis unavailable: connection refused (test)")
        return await super().acquire_lease(name, owner, ttl_s)


async def _until(condition: object, what: str) -> None:
    for _ in range(600):
        if await condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_the_task_prunes_every_interval_and_survives_failures(
    seeded: Seeded, caplog: pytest.LogCaptureFixture
) -> None:
    await seeded.end(await seeded.issue(), "expired", LONG_AGO)
    state = _FlakyState(failures=2)
    keeper = Housekeeping(seeded.database, state, interval_s=0.05, margin=MARGIN)
    with caplog.at_level(logging.INFO, logger="openplatform.housekeeping"):
        keeper.start()
        try:
            await _until(lambda: _none_left(seeded), "the expired token to be pruned")
        finally:
            await keeper.stop()
    failures = [r for r in caplog.records if "pass failed" in r.getMessage()]
    assert len(failures) == 2
    assert any("pruned 1 access token(s)" in r.getMessage() for r in caplog.records)


async def _none_left(seeded: Seeded) -> bool:
    return await seeded.rows(AccessToken) == 0


async def test_the_server_runs_the_task_when_the_interval_is_set(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "OPENPLATFORM_DATABASE_URL": database_url,
            "OPENPLATFORM_DATA_DIR": str(tmp_path),
            "OPENPLATFORM_SECRET_KEY": "prune-test-secret-key",
            "OPENPLATFORM_PRUNE_INTERVAL_S": "1",
        }
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        database = app.state.services.database
        app_record = await database.apps.create(AppSettings(name="a"))
        user = await add_user(database, "bob")
        seeded = Seeded(database, app_record, user.uid)
        await seeded.end(await seeded.issue(), "revoked", LONG_AGO)
        await _until(lambda: _none_left(seeded), "the server's housekeeping")


# --- the command line -----------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    env["OPENPLATFORM_DATA_DIR"] = str(tmp_path / "data")
    env["OPENPLATFORM_SECRET_KEY"] = "test-secret-key-for-the-cli"
    return env


async def _seed_for_cli(env: dict[str, str]) -> None:
    assert run_cli(env, "db", "upgrade").returncode == 0
    database = Database.from_settings(Settings.from_env(env))
    try:
        app = await database.apps.create(AppSettings(name="a"))
        user = await add_user(database, "carol")
        seeded = Seeded(database, app, user.uid)
        for n in range(5):
            await seeded.end(await seeded.issue(session=n < 2), "expired", LONG_AGO)
    finally:
        await database.close()


async def test_cli_prunes_and_prints_exact_counts(cli_env: dict[str, str]) -> None:
    await _seed_for_cli(cli_env)
    done = run_cli(cli_env, "db", "prune", "--json", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == counts(
        access_tokens=5, session_keys=2, refresh_tokens=5, grants=5
    )
    again = run_cli(cli_env, "db", "prune", "--batch", "3")  # the first spelling still works
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == (
        "pruned 0 access token(s) (0 with a session key), 0 refresh token(s), "
        "0 authorization code(s), 0 grant(s), 0 call count row(s), 0 latency row(s)"
    )


@pytest.mark.redis
async def test_cli_says_so_when_another_process_prunes(
    cli_env: dict[str, str], redis_url: str
) -> None:
    # a database of Redis no other test uses: the CLI's keys have the default prefix
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/12"
    cli_env["OPENPLATFORM_CACHE_URL"] = url
    await _seed_for_cli(cli_env)
    holder = RedisSharedState(url)
    owner = f"test-{uuid.uuid4().hex}"
    assert await holder.acquire_lease(LEASE, owner, 60)
    try:
        refused = run_cli(cli_env, "db", "prune", "--json")
    finally:
        await holder.release_lease(LEASE, owner)
        await holder.close()
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "another process is pruning the database now" in refused.stderr
    done = run_cli(cli_env, "db", "prune", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["access_tokens"] == 5


def test_report_counts_every_kind() -> None:
    assert tuple(PruneReport().counts()) == KINDS
