"""CallStatsRepository and migrations 0003 and 0005 (``api_call_stats``,
``api_call_latency``) on SQLite and PostgreSQL: upserts from several writers
add up exactly, latency histograms too; percentiles from buckets. (Retention:
tests/reliability/test_prune.py.)"""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, func, select

from openplatform.gateway.call_counter import CallCounter
from openplatform.storage.apps import AppSettings
from openplatform.storage.call_stats import BUCKETS, LATENCY_BOUNDS_US, CallStat, LatencyHistogram
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.models import ApiCallStat, App
from tests.conftest import TEST_SECRET_KEY

ROUNDS = 10
KEYS = 200


async def _rows(database: Database) -> int:
    async with database.sessions.read() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiCallStat)) or 0)


async def test_add_sums_and_reads_in_order(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="a"))
    stats = database.call_stats
    assert await stats.add([]) == 0
    await stats.add(
        [
            CallStat(app.id, 120, "users.getInfo", 0, 3, 3000),
            CallStat(app.id, 60, "users.getInfo", 104, 2, 500),
            CallStat(app.id, 60, "app.getInfo", 0, 1, 100),
        ]
    )
    await stats.add([CallStat(app.id, 120, "users.getInfo", 0, 2, 7000)])
    rows = await stats.in_range(app.id, 0, 10_000)
    assert [(r.minute, r.method, r.error_code, r.calls, r.latency_us_total) for r in rows] == [
        (60, "app.getInfo", 0, 1, 100),
        (60, "users.getInfo", 104, 2, 500),
        (120, "users.getInfo", 0, 5, 10000),
    ]
    assert rows[2].avg_latency_ms == 2.0
    assert [r.minute for r in await stats.in_range(app.id, 61, 120)] == [120]
    assert await stats.in_range(app.id, 0, 59) == []


async def test_independent_writers_add_up_exactly(database_url: str, database: Database) -> None:
    """Four Database objects (as four processes would have) upsert the same
    keys listed in opposite orders, at once: no deadlock, exact sums."""
    app = await database.apps.create(AppSettings(name="a"))
    others = [Database(database_url, SecretBox(TEST_SECRET_KEY)) for _ in range(3)]
    try:

        async def writer(db: Database, n: int) -> None:
            for i in range(ROUNDS):
                stats = [
                    CallStat(app.id, 60, "users.getInfo", 0, n, 10 * n),
                    *(
                        CallStat(app.id, 60 * (j + 2), "users.getInfo", 104, 1, 1)
                        for j in range(KEYS)
                    ),
                ]
                # Writers list the same keys in different orders.
                await db.call_stats.add(stats[::-1] if (n + i) % 2 else stats)

        await asyncio.gather(*(writer(db, n + 1) for n, db in enumerate([database, *others])))
    finally:
        for db in others:
            await db.close()
    rows = await database.call_stats.in_range(app.id, 0, 2**40)
    first = rows[0]
    assert (first.minute, first.error_code, first.calls) == (60, 0, ROUNDS * (1 + 2 + 3 + 4))
    assert first.latency_us_total == 10 * first.calls
    assert [(r.minute, r.calls) for r in rows[1:]] == [
        (60 * (j + 2), 4 * ROUNDS) for j in range(KEYS)
    ]


async def test_counts_of_deleted_apps_are_dropped(database: Database) -> None:
    kept = await database.apps.create(AppSettings(name="kept"))
    gone = await database.apps.create(AppSettings(name="gone"))
    await database.call_stats.add([CallStat(gone.id, 60, "m.x", 0, 1, 1)])
    await database.apps.delete(gone.id)
    await database.call_stats.delete_app(gone.id)
    assert await database.call_stats.in_range(gone.id, 0, 10_000) == []
    written = await database.call_stats.add(
        [
            CallStat(gone.id, 60, "m.x", 0, 1, 1),
            CallStat(kept.id, 60, "m.x", 0, 1, 1),
            CallStat(999_999, 60, "m.x", 0, 1, 1),
        ]
    )
    assert written == 1
    assert await _rows(database) == 1


async def test_rows_go_with_their_app_row(database: Database) -> None:
    """The foreign key cascades (should an app row ever be removed)."""
    app = await database.apps.create(AppSettings(name="a"))
    await database.call_stats.add([CallStat(app.id, 60, "m.x", 0, 1, 1)])
    async with database.sessions.write() as session:
        await session.execute(delete(App).where(App.id == app.id))
    assert await _rows(database) == 0


def test_percentiles_come_from_the_buckets() -> None:
    assert LatencyHistogram((0,) * BUCKETS).percentile_ms(0.5) is None
    # 100 calls in the bucket (1 ms, 2 ms]: the quantiles spread over it.
    counts = [0] * BUCKETS
    counts[LATENCY_BOUNDS_US.index(2_000)] = 100
    histogram = LatencyHistogram(tuple(counts))
    assert histogram.percentile_ms(0.5) == 1.5
    assert histogram.percentile_ms(0.99) == 1.99
    # 90 fast calls and 10 slow ones: p50 is fast, p95 and p99 are slow.
    counts = [0] * BUCKETS
    counts[0] = 90
    counts[LATENCY_BOUNDS_US.index(1_000_000)] = 10
    histogram = LatencyHistogram(tuple(counts))
    p50, p95, p99 = (histogram.percentile_ms(q) for q in (0.5, 0.95, 0.99))
    assert p50 is not None and p95 is not None and p99 is not None
    assert p50 < 0.5 < 750 < p95 < p99 <= 1000
    # Slower than every bound: the last bound is what can be said.
    counts = [0] * BUCKETS
    counts[-1] = 3
    assert LatencyHistogram(tuple(counts)).percentile_ms(0.5) == LATENCY_BOUNDS_US[-1] / 1000
    merged = LatencyHistogram.merged([histogram, histogram])
    assert merged.calls == 200 and merged.percentile_ms(0.95) == p95


async def test_histograms_of_several_writers_add_up(database_url: str, database: Database) -> None:
    """Two processes' histograms of the same minute and method are one
    histogram with the summed counts (an upsert per bucket)."""
    app = await database.apps.create(AppSettings(name="a"))
    other = Database(database_url, SecretBox(TEST_SECRET_KEY))
    try:
        counters = [CallCounter(db.call_stats, clock=lambda: 600.0) for db in (database, other)]
        for counter, latencies in zip(counters, ([0.0004] * 3, [0.0004, 0.0015, 2.0]), strict=True):
            for latency in latencies:
                counter.record(app.id, "users.getInfo", 0, latency)
            counter.record(app.id, "users.getInfo", 104, 0.0015)
        await asyncio.gather(*(counter.flush() for counter in counters))
    finally:
        await other.close()
    (minute,) = await database.call_stats.latency_in_range(app.id, 0, 10_000)
    assert (minute.minute, minute.method) == (600, "users.getInfo")
    counts = minute.histogram.counts
    assert minute.histogram.calls == 8
    assert counts[0] == 4  # ≤ 0.5 ms
    assert counts[2] == 3  # (1 ms, 2 ms], two of them answered 104
    assert counts[LATENCY_BOUNDS_US.index(2_000_000)] == 1  # (1 s, 2 s]
    rows = await database.call_stats.in_range(app.id, 0, 10_000)
    assert [(r.error_code, r.calls) for r in rows] == [(0, 6), (104, 2)]


async def test_a_flush_is_three_statements_whatever_its_size(database: Database) -> None:
    """Counts of many apps are written with one cached statement per table
    (executemany), never a VALUES list compiled for each flush — compiling
    one for a thousand apps held the event loop for 100-150 ms."""
    from sqlalchemy import event

    from openplatform.storage.call_stats import MinuteLatency

    apps = [await database.apps.create(AppSettings(name=f"s{i}")) for i in range(40)]
    statements: list[tuple[str, bool]] = []

    def seen(_conn, _cursor, statement, _params, _context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement.split()[0].upper(), executemany))

    sync_engine = database.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        histogram = LatencyHistogram(tuple(1 if i == 2 else 0 for i in range(BUCKETS)))
        written = await database.call_stats.add(
            [CallStat(app.id, 60, "users.getInfo", 0, 1, 700) for app in apps],
            [MinuteLatency(app.id, 60, "users.getInfo", histogram) for app in apps],
        )
    finally:
        event.remove(sync_engine, "before_cursor_execute", seen)
    assert written == 40
    writes = [entry for entry in statements if entry[0] == "INSERT"]
    assert writes == [("INSERT", True), ("INSERT", True)]
    assert sum(1 for verb, _ in statements if verb == "SELECT") == 1
