"""Shared state on Redis (``redis://``, ``rediss://``, ``unix://``) and on
Redis Cluster (``redis+cluster://``, :mod:`openplatform.cache.redis_cluster`).

:meth:`RedisSharedState.check_call` is ONE ``EVALSHA`` of ``lua/check_call.lua``
(PROTOCOL §3.3: replay, ``call_id`` and rate limits are exact across processes,
never read-then-write): one round trip, atomic on the server, timed by the
server's clock. The semantics, key layout and GCRA arithmetic are those of
:mod:`openplatform.cache.memory`; every key of one call carries the ``{app}``
hash tag, so the script also runs on Redis Cluster.

Every command goes over one multiplexed connection
(:mod:`openplatform.cache.redis_connection`): concurrent calls share system
calls, and no client library's per-command machinery runs on the hot path. A
failed call is not retried: the script may have run, and a retry would see
its own nonce as a replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources

from openplatform.cache import (
    CallCheck,
    CallVerdict,
    Outcome,
    RateLimitRule,
    RateStatus,
    SharedState,
    SharedStateUnavailable,
)
from openplatform.cache.memory import (
    check_prefix,
    emission_interval_us,
    key_base,
    lease_key,
    lease_ttl_ms,
    normalize_call_id,
    validate_limits,
)
from openplatform.cache.redis_cluster import CLUSTER_SCHEME, ClusterConnection, cluster_addresses
from openplatform.cache.redis_connection import (
    DEFAULT_TIMEOUT_S,
    RedisAddress,
    RedisConnectionError,
    RedisReplyError,
    SharedConnection,
)

__all__ = ["CHECK_CALL_SCRIPT", "LEASE_SCRIPT", "RedisSharedState"]

CHECK_CALL_SCRIPT: bytes = (
    resources.files("openplatform.cache").joinpath("lua/check_call.lua").read_bytes()
)
_CHECK_CALL_SHA = hashlib.sha1(CHECK_CALL_SCRIPT, usedforsecurity=False).hexdigest()
RELEASE_LIMITS_SCRIPT: bytes = (
    resources.files("openplatform.cache").joinpath("lua/release_limits.lua").read_bytes()
)
_RELEASE_LIMITS_SHA = hashlib.sha1(RELEASE_LIMITS_SCRIPT, usedforsecurity=False).hexdigest()
LEASE_SCRIPT: bytes = resources.files("openplatform.cache").joinpath("lua/lease.lua").read_bytes()
_LEASE_SHA = hashlib.sha1(LEASE_SCRIPT, usedforsecurity=False).hexdigest()
_OUTCOMES = (
    Outcome.OK,
    Outcome.REPLAYED,
    Outcome.CALL_ID_NOT_INCREASING,
    Outcome.RATE_LIMITED,
)


class RedisSharedState(SharedState):
    """Shared state of every process that uses the same Redis (and ``prefix``)."""

    def __init__(
        self, url: str, prefix: str = "op", *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """``timeout_s`` bounds every call (connecting, each reply) unless the
        URL's ``socket_timeout`` / ``socket_connect_timeout`` say otherwise."""
        self._prefix = check_prefix(prefix)
        self._connection: SharedConnection | ClusterConnection
        if url.startswith(CLUSTER_SCHEME + "://"):
            self._connection = ClusterConnection(
                cluster_addresses(url, default_timeout_s=timeout_s)
            )
        else:
            self._connection = SharedConnection(
                RedisAddress.from_url(url, default_timeout_s=timeout_s)
            )

    def keys_and_args(self, check: CallCheck) -> tuple[list[str], list[str | int]]:
        """The ``KEYS`` and ``ARGV`` of ``check_call.lua`` for ``check``."""
        base = key_base(self._prefix, check.app)
        keys: list[str] = [base + "g"]
        args: list[str | int] = [0, "", 0]
        if check.nonce is not None:
            if check.nonce_ttl_s < 1:
                raise ValueError("nonce_ttl_s must be at least 1")
            keys.append(base + "n:" + check.nonce)
            args[0] = check.nonce_ttl_s * 1000
        if check.call_id_key is not None and check.call_id is not None:
            if check.call_id_ttl_s < 1:
                raise ValueError("call_id_ttl_s must be at least 1")
            keys.append(base + "c:" + check.call_id_key)
            args[1] = normalize_call_id(check.call_id)
            args[2] = check.call_id_ttl_s * 1000
        validate_limits(check.limits)
        args.append(len(check.limits))
        for rule in check.limits:
            keys.append(base + "r:" + rule.key)
            args.append(rule.limit)
            args.append(emission_interval_us(rule))
        for item in check.batch:
            validate_limits(item)
            args.append(len(item))
            for rule in item:
                keys.append(base + "r:" + rule.key)
                args.append(rule.limit)
                args.append(emission_interval_us(rule))
        return keys, args

    async def check_call(self, check: CallCheck) -> CallVerdict:
        keys, args = self.keys_and_args(check)
        try:
            reply = await self._evalsha(keys, args, CHECK_CALL_SCRIPT, _CHECK_CALL_SHA)
        except RedisConnectionError as exc:
            raise SharedStateUnavailable(f"Redis unavailable: {exc}") from exc
        if not isinstance(reply, list):
            raise RedisReplyError(f"check_call.lua answered {reply!r}")
        outcome, generation, limit, remaining, reset_s, retry_after_s, *waits = (
            int(value) for value in reply
        )
        rate = None if limit < 0 else RateStatus(limit, remaining, reset_s, retry_after_s)
        return CallVerdict(_OUTCOMES[outcome], rate, generation, tuple(waits))

    async def bump_generation(self, app: str) -> None:
        try:
            await self._connection.execute("INCR", key_base(self._prefix, app) + "g")
        except RedisConnectionError as exc:
            raise SharedStateUnavailable(f"Redis unavailable: {exc}") from exc

    async def release_rate_limits(
        self, app: str, release: Sequence[RateLimitRule], clear: Sequence[str] = ()
    ) -> None:
        base = key_base(self._prefix, app)
        keys = [base + "r:" + rule.key for rule in release]
        keys += [base + "r:" + key for key in clear]
        args: list[str | int] = [len(release), *(emission_interval_us(r) for r in release)]
        if not keys:
            return
        try:
            await self._evalsha(keys, args, RELEASE_LIMITS_SCRIPT, _RELEASE_LIMITS_SHA)
        except RedisConnectionError as exc:
            raise SharedStateUnavailable(f"Redis unavailable: {exc}") from exc

    async def acquire_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        key = lease_key(self._prefix, name, owner)
        try:
            reply = await self._connection.execute(
                "SET", key, owner, "NX", "PX", lease_ttl_ms(ttl_s)
            )
        except RedisConnectionError as exc:
            raise SharedStateUnavailable(f"Redis unavailable: {exc}") from exc
        return reply is not None  # nil: the key exists, someone holds the lease

    async def renew_lease(self, name: str, owner: str, ttl_s: float) -> bool:
        return await self._lease(lease_key(self._prefix, name, owner), owner, lease_ttl_ms(ttl_s))

    async def release_lease(self, name: str, owner: str) -> bool:
        return await self._lease(lease_key(self._prefix, name, owner), owner, 0)

    async def _lease(self, key: str, owner: str, ttl_ms: int) -> bool:
        """``lua/lease.lua``: renew (``ttl_ms`` > 0) or release, by the holder only."""
        try:
            reply = await self._evalsha([key], [owner, ttl_ms], LEASE_SCRIPT, _LEASE_SHA)
        except RedisConnectionError as exc:
            raise SharedStateUnavailable(f"Redis unavailable: {exc}") from exc
        return reply == 1

    async def _evalsha(
        self,
        keys: list[str],
        args: list[str | int],
        script: bytes,
        sha: str,
    ) -> object:
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self._connection.execute(*command)
        except RedisReplyError as exc:
            if exc.kind != "NOSCRIPT":
                raise
            # A restarted or flushed server forgot the script: load it once more.
            await self._connection.execute("SCRIPT", "LOAD", script.decode())
            return await self._connection.execute(*command)

    async def ping(self) -> None:
        await self._connection.execute("PING")

    async def close(self) -> None:
        await self._connection.close()
