"""In-process shared state (``memory://``): one process, exact, bounded.

The reference semantics of :meth:`SharedState.check_call` (PROTOCOL §3.3 steps
10, 11 and 13), mirrored line by line by ``lua/check_call.lua`` for Redis:

* keys ``{prefix}:{<app>}:n:<nonce>``, ``…:c:<call_id key>``, ``…:r:<rule key>``;
* ``call_id`` compared as a decimal integer of any length (length, then digits);
* rate limits are GCRA: a counter stores its theoretical arrival time (TAT, µs);
  with emission interval ``T = window_us // limit`` a call fits when
  ``max(TAT, now) + T - now <= limit * T``, so exactly ``limit`` calls fit in a
  burst and the counter refills one call per ``T``.

The whole check runs under one lock with no ``await`` inside, so it is atomic
for asyncio tasks and threads alike. Every entry has a deadline; a heap of
deadlines (one entry per live key) drops expired entries as time passes, so
memory stays bounded by what is live.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from openplatform.cache import (
    CallCheck,
    CallVerdict,
    Outcome,
    RateLimitRule,
    RateStatus,
    SharedState,
)

__all__ = [
    "MemorySharedState",
    "RuleState",
    "check_prefix",
    "emission_interval_us",
    "key_base",
    "lease_key",
    "lease_ttl_ms",
    "most_constrained",
    "normalize_call_id",
    "validate_limits",
]

US = 1_000_000


def check_prefix(prefix: str) -> str:
    """A key prefix may not hold braces: the ``{app}`` part must be the hash tag."""
    if not prefix or "{" in prefix or "}" in prefix:
        raise ValueError(f"cache key prefix must be non-empty and brace-free: {prefix!r}")
    return prefix


def key_base(prefix: str, app: str) -> str:
    """``{prefix}:{<app>}:`` — the app is the Redis Cluster hash tag of every key."""
    if not app or "{" in app or "}" in app:
        raise ValueError(f"app id must be non-empty and brace-free: {app!r}")
    return f"{prefix}:{{{app}}}:"


def lease_key(prefix: str, name: str, owner: str) -> str:
    """``{prefix}:lease:{<name>}`` (the name is its own hash tag); checks that
    the name is brace-free and the owner token not empty."""
    if not name or "{" in name or "}" in name:
        raise ValueError(f"lease name must be non-empty and brace-free: {name!r}")
    if not owner:
        raise ValueError("a lease owner token must not be empty")
    return f"{prefix}:lease:{{{name}}}"


def lease_ttl_ms(ttl_s: float) -> int:
    """A lease's time to live in whole ms (rounded up): more than 0, at most a day."""
    if not 0 < ttl_s <= 86_400:
        raise ValueError(f"a lease lasts more than 0 and at most 86400 s, not {ttl_s!r}")
    return math.ceil(ttl_s * 1000)


def normalize_call_id(call_id: str) -> str:
    """The canonical decimal form of ``call_id`` (no leading zeros)."""
    if not call_id.isascii() or not call_id.isdigit():
        raise ValueError(f"call_id must be a non-negative decimal integer: {call_id!r}")
    return call_id.lstrip("0") or "0"


def emission_interval_us(rule: RateLimitRule) -> int:
    """GCRA emission interval ``T`` in µs: one call refills every ``T``."""
    if rule.limit < 1 or rule.window_s < 1 or rule.limit > rule.window_s * US:
        raise ValueError(f"rate limit needs 1 <= limit <= window_s * 10**6: {rule!r}")
    return rule.window_s * US // rule.limit


def validate_limits(limits: Sequence[RateLimitRule]) -> None:
    """Rule keys name counters; one check consumes each counter at most once."""
    if len(limits) > 1 and len({rule.key for rule in limits}) != len(limits):
        raise ValueError("rate limit keys of one check must be distinct")


@dataclass(frozen=True, slots=True)
class RuleState:
    """One counter as a call leaves it: ``used`` = TAT - now, in µs."""

    limit: int
    remaining: int
    used_us: int
    retry_us: int


def most_constrained(states: Sequence[RuleState]) -> RateStatus:
    """Least remaining, then longest retry-after, then longest reset."""
    best = min(states, key=lambda s: (s.remaining, -s.retry_us, -s.used_us))
    return RateStatus(
        limit=best.limit,
        remaining=best.remaining,
        reset_s=-(-best.used_us // US),
        retry_after_s=-(-best.retry_us // US),
    )


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


def _greater(a: str, b: str) -> bool:
    """a > b for canonical decimal strings."""
    return len(a) > len(b) or (len(a) == len(b) and a > b)


class MemorySharedState(SharedState):
    """Shared state of one process (PROTOCOL §6: only with ``--workers 1``).

    ``clock`` returns monotonic microseconds; tests inject a fake one.
    """

    def __init__(self, prefix: str = "op", *, clock: Callable[[], int] = _monotonic_us) -> None:
        self._prefix = check_prefix(prefix)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (deadline µs, value); a nonce's value is "", a call_id's its
        # canonical digits, a rate counter's its TAT, a lease's its owner.
        self._entries: dict[str, tuple[int, str | int]] = {}
        # exactly one (deadline, key) per key of _entries, possibly stale-early
        self._deadlines: list[tuple[int, str]] = []
        self._generations: dict[str, int] = {}

    def __len__(self) -> int:
        """Entries held, expired or not yet swept (for memory-bound checks)."""
        return len(self._entries)

    async def check_call(self, check: CallCheck) -> CallVerdict:
        base = key_base(self._prefix, check.app)
        nonce_key = None
        if check.nonce is not None:
            if check.nonce_ttl_s < 1:
                raise ValueError("nonce_ttl_s must be at least 1")
            nonce_key = base + "n:" + check.nonce
        call_id_key = call_id = None
        if check.call_id_key is not None and check.call_id is not None:
            if check.call_id_ttl_s < 1:
                raise ValueError("call_id_ttl_s must be at least 1")
            call_id_key = base + "c:" + check.call_id_key
            call_id = normalize_call_id(check.call_id)
        limits = check.limits
        validate_limits(limits)
        rules = [
            (base + "r:" + rule.key, rule.limit, emission_interval_us(rule)) for rule in limits
        ]

        with self._lock:
            now = self._clock()
            self._sweep(now)
            outcome = Outcome.OK
            if nonce_key is not None and self._get(nonce_key, now) is not None:
                outcome = Outcome.REPLAYED
            elif call_id_key is not None and call_id is not None:
                last = self._get(call_id_key, now)
                if isinstance(last, str) and not _greater(call_id, last):
                    outcome = Outcome.CALL_ID_NOT_INCREASING

            tats: list[int] = []
            room = True
            for key, limit, interval in rules:
                stored = self._get(key, now)
                tat = max(stored if isinstance(stored, int) else 0, now)
                tats.append(tat)
                if tat + interval - now > limit * interval:
                    room = False
            if outcome is Outcome.OK and not room:
                outcome = Outcome.RATE_LIMITED
            consume = outcome is Outcome.OK

            if consume:
                if nonce_key is not None:
                    self._put(nonce_key, "", now + check.nonce_ttl_s * US)
                if call_id_key is not None and call_id is not None:
                    self._put(call_id_key, call_id, now + check.call_id_ttl_s * US)

            states = []
            for (key, limit, interval), tat in zip(rules, tats, strict=True):
                retry = 0
                if consume:
                    tat += interval
                    self._put(key, tat, tat)
                else:
                    retry = max(tat + interval - now - limit * interval, 0)
                used = tat - now
                remaining = max((limit * interval - used) // interval, 0)
                states.append(RuleState(limit, remaining, used, retry))

            # after the call's own counters: the items come after the call
            item_waits = self._consume_batch(base, check, now) if consume else ()
            generation = self._generations.get(check.app, 0)
        rate = most_constrained(states) if states else None
        return CallVerdict(outcome, rate, generation, item_waits)

    def _consume_batch(self, base: str, check: CallCheck, now: int) -> tuple[int, ...]:
        """Batch items in order, each all of its counters or none: per item 0,
        or the seconds until it would be let through. (Under the lock.)"""
        waits = []
        for item in check.batch:
            validate_limits(item)
            counters = []
            wait = 0
            for rule in item:
                key, interval = base + "r:" + rule.key, emission_interval_us(rule)
                stored = self._get(key, now)
                tat = max(stored if isinstance(stored, int) else 0, now)
                counters.append((key, tat + interval))
                wait = max(wait, tat + interval - now - rule.limit * interval)
            if wait == 0:
                for key, tat in counters:
                    self._put(key, tat, tat)
            waits.append(-(-wait // US))
        return tuple(waits)

    async def bump_generation(self, app: str) -> None:
        key_base(self._prefix, app)  # the same app ids as check_call
        with self._lock:
            self._generations[app] = self._generations.get(app, 0) + 1

    async def release_rate_limits(
        self, app: str, release: Sequence[RateLimitRule], clear: Sequence[str] = ()
    ) -> None:
        base = key_base(self._prefix, app)
        given_back = [(base + "r:" + rule.key, emission_interval_us(rule)) for rule in release]
        with self._lock:
            now = self._clock()
            for key, interval in given_back:
                stored = self._get(key, now)
                tat = (stored if isinstance(stored, int) else 0) - interval
                if tat > now:
                    self._put(key, tat, tat)
                else:
                    self._expire(key, now)
            for rule_key in clear:
                self._expire(base + "r:" + rule_key, now)

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        key = lease_key(self._prefix, name, owner)
        ttl_us = lease_ttl_ms(ttl_s) * 1000
        with self._lock:
            now = self._clock()
            self._sweep(now)
            if self._get(key, now) is not None:
                return False
            self._put(key, owner, now + ttl_us)
            return True

    async def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        key = lease_key(self._prefix, name, owner)
        ttl_us = lease_ttl_ms(ttl_s) * 1000
        with self._lock:
            now = self._clock()
            if self._get(key, now) != owner:
                return False
            self._put(key, owner, now + ttl_us)
            return True

    async def release_lease(self, name: str, owner: str) -> bool:
        key = lease_key(self._prefix, name, owner)
        with self._lock:
            now = self._clock()
            if self._get(key, now) != owner:
                return False
            self._expire(key, now)
            return True

    def _get(self, key: str, now: int) -> str | int | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def _put(self, key: str, value: str | int, deadline: int) -> None:
        if key not in self._entries:
            heapq.heappush(self._deadlines, (deadline, key))
        self._entries[key] = (deadline, value)

    def _expire(self, key: str, now: int) -> None:
        """Forget ``key`` now (its deadline entry stays: the sweep drops both)."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries[key] = (now, entry[1])

    def _sweep(self, now: int) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, key = heapq.heappop(deadlines)
            deadline = self._entries[key][0]
            if deadline <= now:
                del self._entries[key]
            else:
                heapq.heappush(deadlines, (deadline, key))

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._deadlines.clear()
