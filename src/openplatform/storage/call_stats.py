"""API call statistics (PROTOCOL §5, ``GET /admin/api/stats``): per app,
minute, method and error code, the number of calls and their total latency.

Each server process counts in memory and adds its counts here now and then
(:mod:`openplatform.gateway.call_counter`) with one ``INSERT … ON CONFLICT DO
UPDATE SET calls = calls + excluded.calls`` per batch, so any number of
processes on any number of hosts add up exactly. Counts of an app deleted in
the meantime are dropped: the flush share-locks the apps it writes for, so an
app's deletion and a flush for it never interleave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from openplatform.storage.engine import Sessions
from openplatform.storage.models import ApiCallStat, App

__all__ = ["CallStat", "CallStatsRepository"]

# Rows per INSERT: 6 parameters each stays far below every driver's limit.
BATCH_ROWS = 1000

_RANGE = (
    select(
        ApiCallStat.minute,
        ApiCallStat.method,
        ApiCallStat.error_code,
        ApiCallStat.calls,
        ApiCallStat.latency_us_total,
    )
    .where(
        ApiCallStat.app_id == bindparam("app_id"),
        ApiCallStat.minute >= bindparam("since"),
        ApiCallStat.minute <= bindparam("until"),
    )
    .order_by(ApiCallStat.minute, ApiCallStat.method, ApiCallStat.error_code)
)


@dataclass(frozen=True, slots=True)
class CallStat:
    """Calls of one app in one minute (epoch seconds, a multiple of 60) to one
    method that answered one error code (0: success)."""

    app_id: int
    minute: int
    method: str
    error_code: int
    calls: int
    latency_us_total: int

    @property
    def avg_latency_ms(self) -> float:
        return round(self.latency_us_total / self.calls / 1000, 3) if self.calls else 0.0


def _key(stat: CallStat) -> tuple[int, int, str, int]:
    return (stat.app_id, stat.minute, stat.method, stat.error_code)


class CallStatsRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def add(self, stats: Sequence[CallStat]) -> int:
        """Add ``stats`` to the stored counts in one transaction (keys must be
        unique within ``stats``). Returns how many rows were written; counts of
        apps that are deleted (or never existed) are dropped. Raises
        ``DatabaseUnavailable`` in an outage, having written nothing."""
        if not stats:
            return 0
        app_ids = sorted({stat.app_id for stat in stats})
        insert = sqlite_insert if self._sessions.is_sqlite else pg_insert
        async with self._sessions.write() as session:
            live_query = (
                select(App.id)
                .where(App.id.in_(app_ids), App.status != "deleted")
                .with_for_update(read=True)
            )
            live = set((await session.scalars(live_query)).all())
            rows = [
                {
                    "app_id": stat.app_id,
                    "minute": stat.minute,
                    "method": stat.method,
                    "error_code": stat.error_code,
                    "calls": stat.calls,
                    "latency_us_total": stat.latency_us_total,
                }
                # One key order for every writer: concurrent upserts of the same
                # keys then wait for each other instead of deadlocking.
                for stat in sorted(stats, key=_key)
                if stat.app_id in live
            ]
            for start in range(0, len(rows), BATCH_ROWS):
                statement = insert(ApiCallStat).values(rows[start : start + BATCH_ROWS])
                statement = statement.on_conflict_do_update(
                    index_elements=[
                        ApiCallStat.app_id,
                        ApiCallStat.minute,
                        ApiCallStat.method,
                        ApiCallStat.error_code,
                    ],
                    set_={
                        "calls": ApiCallStat.calls + statement.excluded.calls,
                        "latency_us_total": ApiCallStat.latency_us_total
                        + statement.excluded.latency_us_total,
                    },
                )
                await session.execute(statement)
        return len(rows)

    async def in_range(self, app_id: int, since: int, until: int) -> list[CallStat]:
        """The app's rows with ``since <= minute <= until`` (epoch seconds),
        ordered by minute, method and error code (one SELECT)."""
        rows = await self._sessions.all(_RANGE, {"app_id": app_id, "since": since, "until": until})
        return [
            CallStat(app_id, minute, method, error_code, calls, latency)
            for minute, method, error_code, calls, latency in rows
        ]

    async def delete_app(self, app_id: int) -> None:
        """Forget every count of the app (when it is deleted: PROTOCOL §5)."""
        async with self._sessions.write() as session:
            await session.execute(delete(ApiCallStat).where(ApiCallStat.app_id == app_id))
