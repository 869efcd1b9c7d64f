"""``call_id`` values (PROTOCOL §3.1): strictly increasing per credential."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CallIdSequence"]


class CallIdSequence:
    """Strictly increasing ``call_id`` values, safe across threads and tasks.

    Each value is the current time in microseconds, or the last value plus
    one when the clock has not moved on (or went back), so that ids also
    increase across restarts of the program. The lock is never held across
    an ``await``: asyncio tasks share it as safely as threads.
    """

    def __init__(self, clock_us: Callable[[], int] = lambda: time.time_ns() // 1000) -> None:
        self._clock_us = clock_us
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, self._clock_us())
            return self._last
