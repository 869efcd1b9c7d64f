"""API call statistics (PROTOCOL §5, ``GET /admin/api/stats``): per app,
minute, method and error code, the number of calls and their total latency;
per app, minute and method, a fixed-bucket latency histogram
(:data:`LATENCY_BOUNDS_US`) from which p50/p95/p99 are computed.

Each server process counts in memory and adds its counts here now and then
(:mod:`openplatform.gateway.call_counter`) with one ``INSERT … ON CONFLICT DO
UPDATE SET calls = calls + excluded.calls`` per batch and table, so any
number of processes on any number of hosts add up exactly — histogram buckets
too: a merged histogram is the sum of its parts. Counts of an app deleted in
the meantime are dropped: the flush share-locks the apps it writes for, so an
app's deletion and a flush for it never interleave. Minutes older than the
retention (``OPENPLATFORM_STATS_RETENTION_DAYS``) are deleted in batches by
the housekeeping (:mod:`openplatform.storage.prune`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.expression import Executable

from openplatform.storage.engine import Sessions
from openplatform.storage.models import ApiCallLatency, ApiCallStat, App

__all__ = [
    "LATENCY_BOUNDS_US",
    "CallStat",
    "CallStatsRepository",
    "LatencyHistogram",
    "MinuteLatency",
]

# Upper bounds (inclusive, µs) of the latency buckets; a last bucket holds
# everything slower. Roughly logarithmic: a percentile is known within its
# bucket, a few per cent to a third of its value.
LATENCY_BOUNDS_US: tuple[int, ...] = (
    500, 1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 50_000,
    75_000, 100_000, 150_000, 200_000, 300_000, 500_000, 750_000, 1_000_000,
    2_000_000, 5_000_000, 10_000_000,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_US) + 1


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


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Calls per latency bucket (``counts[i]``: calls slower than bucket i-1's
    bound and at most bucket i's; the last one: slower than every bound)."""

    counts: tuple[int, ...]

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        total = [0] * BUCKETS
        for histogram in histograms:
            for i, count in enumerate(histogram.counts):
                total[i] += count
        return cls(tuple(total))

    @property
    def calls(self) -> int:
        return sum(self.counts)

    def percentile_ms(self, q: float) -> float | None:
        """The ``q`` quantile (0 < q ≤ 1) in ms, interpolated linearly inside
        its bucket; None without calls. In the last bucket: its lower bound."""
        total = self.calls
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low = LATENCY_BOUNDS_US[i - 1] if i else 0
                if i == len(LATENCY_BOUNDS_US):
                    return low / 1000
                high = LATENCY_BOUNDS_US[i]
                return round((low + (high - low) * (rank - seen) / count) / 1000, 3)
            seen += count
        return LATENCY_BOUNDS_US[-1] / 1000  # unreachable: the counts add up to total


@dataclass(frozen=True, slots=True)
class MinuteLatency:
    """The latency histogram of one app's calls to one method in one minute."""

    app_id: int
    minute: int
    method: str
    histogram: LatencyHistogram


_LATENCY_RANGE = (
    select(
        ApiCallLatency.minute, ApiCallLatency.method, ApiCallLatency.bucket, ApiCallLatency.calls
    )
    .where(
        ApiCallLatency.app_id == bindparam("app_id"),
        ApiCallLatency.minute >= bindparam("since"),
        ApiCallLatency.minute <= bindparam("until"),
    )
    .order_by(ApiCallLatency.minute, ApiCallLatency.method, ApiCallLatency.bucket)
)


def _key(stat: CallStat) -> tuple[int, int, str, int]:
    return (stat.app_id, stat.minute, stat.method, stat.error_code)


def _latency_key(latency: MinuteLatency) -> tuple[int, int, str]:
    return (latency.app_id, latency.minute, latency.method)


def _upserts(is_sqlite: bool) -> tuple[Executable, Executable]:
    """The two upserts of a flush, run with a list of rows (``executemany``):
    one statement each, compiled once and cached. A multi-row ``VALUES``
    built for each flush instead cost SQLAlchemy some 0.2 ms of the event
    loop's time per row to compile — 100-150 ms of stalled requests at every
    flush of a thousand apps' counts."""
    insert = sqlite_insert if is_sqlite else pg_insert
    stat_table = cast(Table, ApiCallStat.__table__)
    stats = insert(stat_table)
    stats = stats.on_conflict_do_update(
        index_elements=["app_id", "minute", "method", "error_code"],
        set_={
            "calls": stat_table.c.calls + stats.excluded.calls,
            "latency_us_total": stat_table.c.latency_us_total + stats.excluded.latency_us_total,
        },
    )
    bucket_table = cast(Table, ApiCallLatency.__table__)
    buckets = insert(bucket_table)
    buckets = buckets.on_conflict_do_update(
        index_elements=["app_id", "minute", "method", "bucket"],
        set_={"calls": bucket_table.c.calls + buckets.excluded.calls},
    )
    return stats, buckets


class CallStatsRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._stats_upsert, self._buckets_upsert = _upserts(sessions.is_sqlite)

    async def add(self, stats: Sequence[CallStat], latency: Sequence[MinuteLatency] = ()) -> int:
        """Add ``stats`` and ``latency`` histograms to the stored counts in one
        transaction (keys must be unique within each). Returns how many count
        rows were written; counts of apps that are deleted (or never existed)
        are dropped. Raises ``DatabaseUnavailable`` in an outage, having
        written nothing."""
        if not stats and not latency:
            return 0
        app_ids = sorted({stat.app_id for stat in stats} | {item.app_id for item in latency})
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
            if rows:
                await session.execute(self._stats_upsert, rows)
            buckets = [
                {
                    "app_id": item.app_id,
                    "minute": item.minute,
                    "method": item.method,
                    "bucket": bucket,
                    "calls": calls,
                }
                for item in sorted(latency, key=_latency_key)
                if item.app_id in live
                for bucket, calls in enumerate(item.histogram.counts)
                if calls
            ]
            if buckets:
                await session.execute(self._buckets_upsert, buckets)
        return len(rows)

    async def in_range(self, app_id: int, since: int, until: int) -> list[CallStat]:
        """The app's rows with ``since <= minute <= until`` (epoch seconds),
        ordered by minute, method and error code (one SELECT)."""
        rows = await self._sessions.all(_RANGE, {"app_id": app_id, "since": since, "until": until})
        return [
            CallStat(app_id, minute, method, error_code, calls, latency)
            for minute, method, error_code, calls, latency in rows
        ]

    async def latency_in_range(self, app_id: int, since: int, until: int) -> list[MinuteLatency]:
        """The app's latency histograms with ``since <= minute <= until``, by
        minute and method (one SELECT)."""
        rows = await self._sessions.all(
            _LATENCY_RANGE, {"app_id": app_id, "since": since, "until": until}
        )
        result: list[MinuteLatency] = []
        counts: list[int] = []
        current: tuple[int, str] | None = None
        for minute, method, bucket, calls in rows:
            if (minute, method) != current:
                if current is not None:
                    result.append(MinuteLatency(app_id, *current, LatencyHistogram(tuple(counts))))
                current, counts = (minute, method), [0] * BUCKETS
            if 0 <= bucket < BUCKETS:
                counts[bucket] += calls
        if current is not None:
            result.append(MinuteLatency(app_id, *current, LatencyHistogram(tuple(counts))))
        return result

    async def delete_app(self, app_id: int) -> None:
        """Forget every count of the app (when it is deleted: PROTOCOL §5)."""
        async with self._sessions.write() as session:
            await session.execute(delete(ApiCallStat).where(ApiCallStat.app_id == app_id))
            await session.execute(delete(ApiCallLatency).where(ApiCallLatency.app_id == app_id))
