"""Shared state on Redis (``redis://``, ``rediss://``, ``unix://``).

:meth:`RedisSharedState.check_call` is ONE ``EVALSHA`` of ``lua/check_call.lua``
(PROTOCOL §3.3: replay, ``call_id`` and rate limits are exact across processes,
never read-then-write): one round trip, atomic on the server, timed by the
server's clock. The semantics, key layout and GCRA arithmetic are those of
:mod:`openplatform.cache.memory`; every key of one call carries the ``{app}``
hash tag, so the script also runs on Redis Cluster.

The hot path skips redis-py's per-command machinery (pool checkout, retries,
instrumentation): concurrent calls of ``check_call`` share one connection, each
writes its command as it comes and one reader task hands the replies back in
order (hiredis parses them). Concurrent calls thus share system calls; on a
2-core machine this costs about half the client CPU of ``Redis.evalsha``
(``bench/cache_roundtrip.py``). A failed call is not retried: the script may
have run, and a retry would see its own nonce as a replay.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from importlib import resources

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from openplatform.cache import CallCheck, CallVerdict, Outcome, RateStatus, SharedState
from openplatform.cache.memory import (
    check_prefix,
    emission_interval_us,
    key_base,
    normalize_call_id,
    validate_limits,
)

__all__ = ["CHECK_CALL_SCRIPT", "RedisSharedState"]

CHECK_CALL_SCRIPT: bytes = (
    resources.files("openplatform.cache").joinpath("lua/check_call.lua").read_bytes()
)
_CHECK_CALL_SHA = hashlib.sha1(CHECK_CALL_SCRIPT, usedforsecurity=False).hexdigest()
_OUTCOMES = (
    Outcome.OK,
    Outcome.REPLAYED,
    Outcome.CALL_ID_NOT_INCREASING,
    Outcome.RATE_LIMITED,
)


def pack_command(args: tuple[str | int, ...]) -> bytes:
    """One RESP command (an array of bulk strings, UTF-8); redis-py's packer is
    general and costs several times as much on the hot path."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _MultiplexedConnection:
    """One Redis connection that many tasks use at once (RESP pipelining).

    Commands are written in the order their futures are queued; Redis answers
    in that order, so the reader task resolves the oldest future with each
    reply. A cancelled caller's reply is read and dropped. When the connection
    breaks, every waiting call fails and the next call connects again.
    """

    def __init__(self, connection: AbstractConnection, read_timeout: float | None) -> None:
        # ``connection`` has no socket timeout, so a write is queued at once (no
        # task per write, order kept); replies are awaited ``read_timeout`` at most.
        self._connection = connection
        self._read_timeout = read_timeout
        self._waiting: deque[asyncio.Future[object]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *args: str | int) -> object:
        connection = self._connection
        if not connection.is_connected:
            async with self._connecting:
                if not connection.is_connected:
                    try:
                        async with asyncio.timeout(self._read_timeout):
                            await connection.connect()  # type: ignore[no-untyped-call]
                    except TimeoutError:
                        await connection.disconnect(nowait=True)
                        raise RedisTimeoutError("Redis did not answer the handshake") from None
        packed = pack_command(args)
        reply: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting.append(reply)
        try:
            # Queued and written with no await in between, so the order holds.
            await connection.send_packed_command(packed, check_health=False)
        except BaseException as exc:
            self._fail_all(exc, keep=reply)
            raise
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_replies())
        return await reply

    async def _read_replies(self) -> None:
        try:
            while self._waiting:
                value: object
                try:
                    value = await self._connection.read_response(timeout=self._read_timeout)
                except ResponseError as exc:  # an error reply: the connection is fine
                    value = exc
                if value is None:  # redis-py's answer to a read timing out
                    raise RedisTimeoutError("no reply from Redis in time")
                reply = self._waiting.popleft()
                if reply.done():
                    continue
                if isinstance(value, ResponseError):
                    reply.set_exception(value)
                else:
                    reply.set_result(value)
        except BaseException as exc:
            await self._connection.disconnect(nowait=True)
            self._fail_all(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._reader = None

    def _fail_all(self, exc: BaseException, keep: asyncio.Future[object] | None = None) -> None:
        """Fail every waiting call: their replies will never come."""
        error = (
            exc
            if isinstance(exc, Exception)
            else RedisConnectionError("connection closed while waiting for the reply")
        )
        while self._waiting:
            reply = self._waiting.popleft()
            if reply is not keep and not reply.done():
                reply.set_exception(error)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._connection.disconnect()
        self._fail_all(RedisConnectionError("connection closed"))


class RedisSharedState(SharedState):
    """Shared state of every process that uses the same Redis (and ``prefix``).

    ``check_call`` uses one multiplexed connection; ``ping`` and script loads
    use a small pool (``?max_connections=`` in the URL overrides its size).
    """

    def __init__(self, url: str, prefix: str = "op") -> None:
        self._prefix = check_prefix(prefix)
        pool = BlockingConnectionPool.from_url(url, max_connections=4, timeout=5)
        self._redis: Redis = Redis.from_pool(pool)
        options = dict(pool.connection_kwargs)
        read_timeout = options.get("socket_timeout")
        options["socket_timeout"] = None
        self._hot = _MultiplexedConnection(
            pool.connection_class(**options),
            read_timeout if isinstance(read_timeout, int | float) else None,
        )

    def keys_and_args(self, check: CallCheck) -> tuple[list[str], list[str | int]]:
        """The ``KEYS`` and ``ARGV`` of ``check_call.lua`` for ``check``."""
        base = key_base(self._prefix, check.app)
        keys: list[str] = []
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
        for rule in check.limits:
            keys.append(base + "r:" + rule.key)
            args.append(rule.limit)
            args.append(emission_interval_us(rule))
        return keys, args

    async def check_call(self, check: CallCheck) -> CallVerdict:
        keys, args = self.keys_and_args(check)
        try:
            reply = await self._hot.execute("EVALSHA", _CHECK_CALL_SHA, len(keys), *keys, *args)
        except NoScriptError:
            # A restarted or flushed server forgot the script: load it once more.
            await self._redis.script_load(CHECK_CALL_SCRIPT)
            reply = await self._hot.execute("EVALSHA", _CHECK_CALL_SHA, len(keys), *keys, *args)
        if not isinstance(reply, list):
            raise ResponseError(f"check_call.lua answered {reply!r}")
        outcome = _OUTCOMES[int(reply[0])]
        if len(reply) == 1:
            return CallVerdict(outcome)
        _, limit, remaining, reset_s, retry_after_s = (int(value) for value in reply)
        return CallVerdict(outcome, RateStatus(limit, remaining, reset_s, retry_after_s))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._hot.close()
        await self._redis.aclose()
