"""Calls per app, minute, method and error code, with a latency histogram
(PROTOCOL §5, ``GET /admin/api/stats``, the console's usage charts), counted
in memory on the hot path and written out now and then.

:meth:`CallCounter.record` is a dict update and a bisection: no I/O per call.
A background task (started in the application's lifespan) adds the counts to
the database every :data:`FLUSH_INTERVAL_S` seconds and once more at
shutdown, as upserts that sum (:mod:`openplatform.storage.call_stats`), so
every process on every host adds up exactly. A flush that fails keeps its
counts for the next one. Minutes are UTC epoch seconds rounded down to a
multiple of 60. Minutes older than the retention
(``OPENPLATFORM_STATS_RETENTION_DAYS``) are deleted by the housekeeping
(:mod:`openplatform.housekeeping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from openplatform.storage.call_stats import (
    BUCKETS,
    LATENCY_BOUNDS_US,
    CallStat,
    CallStatsRepository,
    LatencyHistogram,
    MinuteLatency,
)

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.database import Database

__all__ = ["FLUSH_INTERVAL_S", "CallCounter", "call_counter"]

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 5.0

# (app_id, minute, method, error_code) ->
#     [calls, total latency in µs, calls in latency bucket 0, bucket 1, …]
_Key = tuple[int, int, str, int]
_ENTRY = 2 + BUCKETS


class CallCounter:
    """This process's counts not yet written to the database."""

    def __init__(
        self,
        repository: CallStatsRepository,
        *,
        clock: Callable[[], float] = time.time,
        interval_s: float = FLUSH_INTERVAL_S,
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._interval_s = interval_s
        self._pending: dict[_Key, list[int]] = {}
        # One flush at a time: a caller that flushes before reading (the stats
        # endpoint) then also waits for the background flush in progress.
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending_calls(self) -> int:
        """Calls counted but not yet written."""
        return sum(entry[0] for entry in self._pending.values())

    def record(self, app_id: int, method: str, error_code: int, latency_s: float) -> None:
        """Count one call of a registered ``method`` of a known app."""
        key = (app_id, int(self._clock()) // 60 * 60, method, error_code)
        latency_us = int(latency_s * 1_000_000)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [0] * _ENTRY
        entry[0] += 1
        entry[1] += latency_us
        entry[2 + bisect_left(LATENCY_BOUNDS_US, latency_us)] += 1

    async def flush(self) -> int:
        """Write the pending counts (one transaction); returns the rows written.
        On failure (``DatabaseUnavailable``…) the counts stay pending and the
        error propagates."""
        async with self._lock:
            if not self._pending:
                return 0
            pending, self._pending = self._pending, {}
            stats = [
                CallStat(app_id, minute, method, code, entry[0], entry[1])
                for (app_id, minute, method, code), entry in pending.items()
            ]
            histograms: dict[tuple[int, int, str], list[int]] = {}
            for (app_id, minute, method, _code), entry in pending.items():
                counts = histograms.setdefault((app_id, minute, method), [0] * BUCKETS)
                for i in range(BUCKETS):
                    counts[i] += entry[2 + i]
            latency = [
                MinuteLatency(app_id, minute, method, LatencyHistogram(tuple(counts)))
                for (app_id, minute, method), counts in histograms.items()
            ]
            try:
                return await self._repository.add(stats, latency)
            except BaseException:
                self._restore(pending)
                raise

    def _restore(self, pending: dict[_Key, list[int]]) -> None:
        for key, counts in pending.items():
            entry = self._pending.get(key)
            if entry is None:
                self._pending[key] = counts
            else:
                for i, count in enumerate(counts):
                    entry[i] += count

    def start(self) -> None:
        """Flush every ``interval_s`` seconds in a background task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="call-counter-flush")

    async def stop(self) -> None:
        """Stop the background task (never in the middle of a write) and flush
        what is left; a failure is logged, not raised (this runs at shutdown)."""
        task, self._task = self._task, None
        if task is not None:
            async with self._lock:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await self.flush()
        except Exception:
            log.warning("could not write %d counted API calls at shutdown", self.pending_calls)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.flush()
            except Exception as exc:
                log.warning(
                    "could not write API call counts (%d calls kept for the next try): %s",
                    self.pending_calls,
                    exc,
                )


_COUNTERS: WeakKeyDictionary[Database, CallCounter] = WeakKeyDictionary()


def call_counter(services: Services) -> CallCounter:
    """The process's counter for the services' database (made on first use)."""
    counter = _COUNTERS.get(services.database)
    if counter is None:
        counter = CallCounter(services.database.call_stats)
        _COUNTERS[services.database] = counter
    return counter
