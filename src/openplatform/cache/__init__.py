"""Shared fast state: replay nonces, ``call_id`` high-water marks, rate
counters, leases.

One interface, two backends chosen by URL scheme (``memory://`` in-process,
``redis://`` shared across processes and hosts). Everything one signed call
needs from shared state — replay, ``call_id`` and every applicable rate limit
— is decided by ONE atomic operation (:meth:`SharedState.check_call`), one
round trip on Redis, so the hot path pays the client cost once.

Keys carry the app id as a ``{hash tag}`` so one call's keys live in one
Redis Cluster slot.

Each app also has a *generation*: a number that changes whenever the app's
settings or any of its credentials change (:meth:`SharedState.bump_generation`).
:meth:`SharedState.check_call` reports it in the same atomic step, so a
process that keeps apps and tokens in memory learns within the call itself
whether what it read is still current.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "CallCheck",
    "CallVerdict",
    "Outcome",
    "RateLimitRule",
    "RateStatus",
    "SharedState",
    "SharedStateUnavailable",
    "open_shared_state",
]


class SharedStateUnavailable(Exception):
    """The shared cache cannot be reached or did not answer in time. Callers
    answer "service temporarily unavailable" (code 2): the call was not
    checked, so it must not be served."""


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """One rate-limit counter to consume: ``limit`` calls per ``window_s``.

    ``key`` identifies the counter within the app (rule, subject: app, user or IP).
    """

    key: str
    limit: int
    window_s: int


@dataclass(frozen=True, slots=True)
class RateStatus:
    """The state of the most constrained counter after the call."""

    limit: int
    remaining: int
    reset_s: int  # seconds until the counter is back to its full limit
    retry_after_s: int  # 0 when allowed; else seconds until one call would be allowed

    def headers(self) -> dict[str, str]:
        """PROTOCOL §3.3: ``X-RateLimit-*`` (``Reset`` in seconds from now until
        the counter is full again), and ``Retry-After`` when refused."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }
        if self.retry_after_s:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class Outcome(Enum):
    OK = "ok"
    REPLAYED = "replayed"  # the nonce was already seen
    CALL_ID_NOT_INCREASING = "call_id"  # call_id <= the last accepted one
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True)
class CallCheck:
    """What one call asks of shared state, checked in this order and applied
    all-or-nothing: a refused call records nothing and consumes nothing.

    ``nonce``: remember for ``nonce_ttl_s`` seconds unless already seen.
    ``call_id_key`` / ``call_id``: accept only if greater than the last accepted
    (``call_id`` is a non-negative decimal integer string of any length); the
    last accepted one is kept ``call_id_ttl_s`` seconds after it was accepted.
    ``limits``: every counter must have room; all are consumed together.
    ``batch``: the rate limits of each item of a ``batch.run`` call. Once the
    call itself is accepted, item after item consumes all of its counters or
    none (PROTOCOL §4 batch: a refused item is that item's 4).
    """

    app: str
    nonce: str | None = None
    nonce_ttl_s: int = 600
    call_id_key: str | None = None
    call_id: str | None = None
    call_id_ttl_s: int = 7 * 86400
    limits: Sequence[RateLimitRule] = field(default_factory=tuple)
    batch: Sequence[Sequence[RateLimitRule]] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class CallVerdict:
    """The outcome, and — whenever limits were given, whatever the outcome —
    the most constrained counter: least remaining, then longest retry-after,
    then longest reset. A refused call consumed nothing, so then ``rate`` is
    the counters' current state (``retry_after_s`` > 0 only if one is full).
    """

    outcome: Outcome
    rate: RateStatus | None = None  # the least-remaining limit, when limits were given
    # the app's generation when the check ran (see bump_generation)
    generation: int = field(default=0, compare=False)
    # per batch item (when the call was accepted): 0 let through, else the
    # seconds until it would be
    item_waits: tuple[int, ...] = ()


class SharedState(abc.ABC):
    """The capability interface both backends implement."""

    @abc.abstractmethod
    async def check_call(self, check: CallCheck) -> CallVerdict:
        """All of one call's shared-state checks in one atomic step."""

    async def remember_nonce(self, app: str, nonce: str, ttl_s: int) -> bool:
        """True if ``nonce`` was new (and is now remembered for ``ttl_s``)."""
        verdict = await self.check_call(CallCheck(app=app, nonce=nonce, nonce_ttl_s=ttl_s))
        return verdict.outcome is Outcome.OK

    async def accept_call_id(self, app: str, key: str, call_id: str) -> bool:
        """True if ``call_id`` is greater than the last accepted one for ``key``."""
        verdict = await self.check_call(CallCheck(app=app, call_id_key=key, call_id=call_id))
        return verdict.outcome is Outcome.OK

    async def hit_rate_limits(self, app: str, limits: Sequence[RateLimitRule]) -> CallVerdict:
        """Consume one call from every counter in ``limits``, or from none."""
        return await self.check_call(CallCheck(app=app, limits=tuple(limits)))

    @abc.abstractmethod
    async def release_rate_limits(
        self, app: str, release: Sequence[RateLimitRule], clear: Sequence[str] = ()
    ) -> None:
        """In one atomic step: give one call back to every counter of ``release``
        (a counter never holds more than its limit) and empty the counters
        whose keys are in ``clear``."""

    @abc.abstractmethod
    async def bump_generation(self, app: str) -> None:
        """Move the app's generation on: every process that holds something of
        the app in memory reads it afresh once its next call of the app sees
        the new number. Call after the change is committed."""

    @abc.abstractmethod
    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lease ``name`` for ``owner`` (a token unique to the taker)
        for ``ttl_s`` seconds: True when it was free — or its holder let it
        lapse — and is now ``owner``'s; False while anyone holds it (``owner``
        too: a lease is extended with :meth:`renew_lease`). One process at a
        time, across hosts, runs what a lease guards (the housekeeping)."""

    @abc.abstractmethod
    async def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        """Make ``owner``'s lease last ``ttl_s`` seconds from now; False (and
        nothing changed) when ``owner`` no longer holds it."""

    @abc.abstractmethod
    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up if ``owner`` holds it (True); a lease another
        owner took meanwhile is left alone (False)."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the backend cannot be reached (for ``/readyz``)."""

    @abc.abstractmethod
    async def close(self) -> None: ...


def open_shared_state(
    url: str, *, prefix: str = "op", timeout_s: float | None = None
) -> SharedState:
    """The backend for ``url``: ``memory://``, or ``redis://``/``rediss://``/``unix://``
    (one Redis) or ``redis+cluster://`` (a Redis Cluster). ``timeout_s``
    (``OPENPLATFORM_CACHE_TIMEOUT_S``) bounds each Redis call unless the URL's
    ``socket_timeout`` sets it; None keeps the default (5 s)."""
    if url.startswith("memory://"):
        from openplatform.cache.memory import MemorySharedState

        return MemorySharedState(prefix=prefix)
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        from openplatform.cache.redis import RedisSharedState

        if timeout_s is None:
            return RedisSharedState(url, prefix=prefix)
        return RedisSharedState(url, prefix=prefix, timeout_s=timeout_s)
    raise ValueError(f"unsupported cache URL scheme: {url.split(':')[0]!r}")
