"""Housekeeping of the durable store: the rows that can never matter again,
deleted in bounded batches (``openplatform db prune`` and the background task
of :mod:`openplatform.housekeeping`).

What goes (``margin``: ``OPENPLATFORM_PRUNE_MARGIN_DAYS``, 7 days by default):

* access tokens — with their session keys, which share their row — that
  expired, or were revoked, more than ``margin`` ago;
* refresh tokens that expired, or were revoked, more than ``margin`` ago. A
  rotated one stays until then too: presenting it again is how a stolen
  token is told from its rightful client, and revokes the family (RFC 9700
  §4.14.2, PROTOCOL §2);
* authorization codes that expired more than ``margin`` ago, used or not (a
  used one stays that long so that a second use still revokes what the first
  issued, RFC 6749 §4.1.2);
* grants made more than ``margin`` ago that no token and no code refers to
  any more: nothing can be issued under them again (a refresh needs a refresh
  token of the grant; a code makes a new grant) and nothing is left in them
  to revoke;
* call statistics (both tables) of minutes older than
  ``OPENPLATFORM_STATS_RETENTION_DAYS`` (0 keeps them forever).

Consents, users, apps and admin tokens are never touched here.

**Why a margin.** A live credential — not revoked, not expired — is never
deleted, whatever the margin. Past its end, a credential's row still tells
the client *why* it is refused: an expired access token answers 111 (not
110), an expired session key 112 (not 102), an expired refresh token 10006
(not 10002), so the client refreshes instead of sending its user through
authorization again; and a code or rotated refresh token used again revokes
its token family. Once the row is gone the credential is merely unknown —
refused as surely (introspection answers ``active: false`` either way, RFC
7662 §2.2; the gateway's credential cache holds records, not rows, and a
record it holds stays expired or revoked) but less helpfully. A week covers
a client that was away over a long weekend or a holiday, and any clock skew
between hosts many times over; ``refresh_reuse_grace_s`` (seconds) is far
inside it. Statistics have their own retention.

**Batches.** Each batch is ONE short write transaction that deletes at most
``batch_rows`` rows — ``DELETE … WHERE id IN (SELECT id … WHERE <expired>
LIMIT n)``, found by an index (migration 0007), the same SQL on SQLite and
PostgreSQL — and then the pass rests as long as the batch took, so API calls
(on SQLite, the other writers queued for the one write lock above all) go
in between: a write waits for one batch at most (a few tens of ms), and the
pass holds at most half of the database's write time.
A deleted row leaves its index, so the next batch starts where this one
ended without rescanning. Grants, found by what does *not* refer to them,
are walked in id order instead, ``batch_rows`` candidates per transaction.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, delete, exists, select
from sqlalchemy.orm import InstrumentedAttribute

from openplatform.storage.engine import Sessions
from openplatform.storage.models import (
    AccessToken,
    ApiCallLatency,
    ApiCallStat,
    AuthorizationCode,
    Grant,
    RefreshToken,
    utcnow,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_MARGIN",
    "KINDS",
    "BetweenBatches",
    "PruneReport",
    "Pruner",
]

# What a pass deletes, in the order of PruneReport.counts().
KINDS = (
    "access_tokens",
    "session_keys",
    "refresh_tokens",
    "authorization_codes",
    "grants",
    "call_stats",
    "call_latency",
)
DEFAULT_BATCH_ROWS = 1000
DEFAULT_MARGIN = timedelta(days=7)

# Called after every batch with the kind and the rows it deleted; a False
# answer ends the pass there (the housekeeping lost its lease).
BetweenBatches = Callable[[str, int], Awaitable[bool]]


@dataclass
class PruneReport:
    """What one pass deleted, by kind (``session_keys``: of the access tokens
    deleted, those that had a session key)."""

    access_tokens: int = 0
    session_keys: int = 0
    refresh_tokens: int = 0
    authorization_codes: int = 0
    grants: int = 0
    call_stats: int = 0
    call_latency: int = 0
    batches: int = 0  # write transactions
    complete: bool = True  # False: stopped before the end (the lease was lost)

    def counts(self) -> dict[str, int]:
        """Rows deleted per kind, in a fixed order (the CLI's ``--json``)."""
        return {kind: getattr(self, kind) for kind in KINDS}

    @property
    def deleted(self) -> int:
        """Rows deleted (a session key is part of its access token's row)."""
        return sum(n for kind, n in self.counts().items() if kind != "session_keys")

    def summary(self) -> str:
        """One human line."""
        return (
            f"{self.access_tokens} access token(s) ({self.session_keys} with a session key), "
            f"{self.refresh_tokens} refresh token(s), "
            f"{self.authorization_codes} authorization code(s), {self.grants} grant(s), "
            f"{self.call_stats} call count row(s), {self.call_latency} latency row(s)"
        )


class _Stopped(Exception):
    pass


# One batch's outcome: rows deleted, and whether more may be due.
_Batch = tuple[int, bool]
_Expiring = AccessToken | AuthorizationCode | RefreshToken | ApiCallStat | ApiCallLatency
# The column that says when a row ended (or, for statistics, its minute).
_Moment = (
    InstrumentedAttribute[datetime]
    | InstrumentedAttribute[datetime | None]
    | InstrumentedAttribute[int]
)


class Pruner:
    """One pass over every kind, oldest kinds of dependency first (codes and
    tokens before the grants they point to)."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        margin: timedelta = DEFAULT_MARGIN,
        stats_retention_days: int = 0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        if margin < timedelta(0):
            raise ValueError("margin may not be negative")
        self._sessions = sessions
        self._batch_rows = batch_rows
        self._margin = margin
        self._stats_retention_days = stats_retention_days
        self._clock = clock

    async def prune(self, between_batches: BetweenBatches | None = None) -> PruneReport:
        """Delete everything that is due now, batch after batch."""
        now = self._clock()
        cutoff = now - self._margin
        report = PruneReport()

        async def sweep(kind: str, batch: Callable[[], Awaitable[_Batch]]) -> None:
            while True:
                started = time.perf_counter()
                deleted, more = await batch()
                took = time.perf_counter() - started
                report.batches += 1
                setattr(report, kind, getattr(report, kind) + deleted)
                if between_batches is not None and not await between_batches(kind, deleted):
                    raise _Stopped
                if not more:
                    return
                # rest as long as the batch took: the writes queued meanwhile
                # go first, and those that come during the rest wait for nothing
                await asyncio.sleep(took)

        async def access_tokens(column: _Moment) -> _Batch:
            ids = self._due(AccessToken, column, cutoff)
            async with self._sessions.write() as session:
                keys = (
                    await session.scalars(
                        delete(AccessToken)
                        .where(AccessToken.id.in_(ids))
                        .returning(AccessToken.session_key_hash)
                        .execution_options(synchronize_session=False)
                    )
                ).all()
            report.session_keys += sum(1 for key in keys if key is not None)
            return len(keys), len(keys) == self._batch_rows

        grants_after = [0]
        try:
            await sweep(
                "authorization_codes",
                lambda: self._delete(AuthorizationCode, AuthorizationCode.expires_at, cutoff),
            )
            await sweep("access_tokens", lambda: access_tokens(AccessToken.expires_at))
            await sweep("access_tokens", lambda: access_tokens(AccessToken.revoked_at))
            await sweep(
                "refresh_tokens",
                lambda: self._delete(RefreshToken, RefreshToken.expires_at, cutoff),
            )
            await sweep(
                "refresh_tokens",
                lambda: self._delete(RefreshToken, RefreshToken.revoked_at, cutoff),
            )
            await sweep("grants", lambda: self._grants(cutoff, grants_after))
            if self._stats_retention_days:
                before = int(now.timestamp()) // 60 * 60 - self._stats_retention_days * 86_400
                await sweep(
                    "call_stats", lambda: self._delete(ApiCallStat, ApiCallStat.minute, before)
                )
                await sweep(
                    "call_latency",
                    lambda: self._delete(ApiCallLatency, ApiCallLatency.minute, before),
                )
        except _Stopped:
            report.complete = False
        return report

    def _due(self, model: type[_Expiring], column: _Moment, before: datetime | int) -> Select[int]:
        """The ids of at most ``batch_rows`` rows whose ``column`` is before
        ``before``, earliest first: in the order of the column's index, which
        PostgreSQL then walks too (rather than scanning the table from its
        first page, past the dead rows of the batches before). On PostgreSQL the
        rows an API transaction holds locked (a revocation under way) are
        skipped, left for the next pass: the pass never waits for the API,
        and the two never deadlock. (SQLite has one writer at a time.)"""
        return (
            select(model.id)
            .where(column < before)
            .order_by(column)
            .limit(self._batch_rows)
            .with_for_update(skip_locked=True)
        )

    async def _delete(
        self,
        model: type[_Expiring],
        column: _Moment,
        before: datetime | int,
    ) -> _Batch:
        """One batch: at most ``batch_rows`` rows of ``model`` due by ``column``."""
        ids = self._due(model, column, before)
        async with self._sessions.write() as session:
            result = await session.execute(
                delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
            )
        deleted = int(result.rowcount)  # type: ignore[attr-defined]
        return deleted, deleted == self._batch_rows

    async def _grants(self, cutoff: datetime, after: list[int]) -> _Batch:
        """The next ``batch_rows`` grants made before ``cutoff`` (in id order,
        past ``after[0]``): those no token or code refers to are deleted, and
        ``after[0]`` moves past the window. A short window is the last."""
        async with self._sessions.write() as session:
            window = (
                await session.scalars(
                    select(Grant.id)
                    .where(Grant.id > after[0], Grant.created_at < cutoff)
                    .order_by(Grant.id)
                    .limit(self._batch_rows)
                )
            ).all()
            if not window:
                return 0, False
            dead = (
                select(Grant.id)
                .where(
                    Grant.id >= window[0],
                    Grant.id <= window[-1],
                    Grant.created_at < cutoff,
                    ~exists().where(AccessToken.grant_id == Grant.id),
                    ~exists().where(RefreshToken.grant_id == Grant.id),
                    ~exists().where(AuthorizationCode.grant_id == Grant.id),
                )
                .with_for_update(skip_locked=True)  # as in _due
            )
            result = await session.execute(
                delete(Grant).where(Grant.id.in_(dead)).execution_options(synchronize_session=False)
            )
        after[0] = window[-1]
        return int(result.rowcount), len(window) == self._batch_rows  # type: ignore[attr-defined]
