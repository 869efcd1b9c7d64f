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
import contextlib
import hashlib
from collections import deque
from collections.abc import Callable
from importlib import resources

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from openplatform.cache import (
    CallCheck,
    CallVerdict,
    Outcome,
    RateStatus,
    SharedState,
    SharedStateUnavailable,
)
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


class _Link:
    """One connection, the calls waiting for its replies (oldest first) and
    the task reading them. A broken link is dropped whole, never reused."""

    def __init__(self, connection: AbstractConnection, loop: asyncio.AbstractEventLoop) -> None:
        self.connection = connection
        self.loop = loop
        self.waiting: deque[asyncio.Future[object]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.broken = False

    def fail(self, exc: BaseException, keep: asyncio.Future[object] | None = None) -> None:
        """Fail every waiting call but ``keep``: their replies will never come."""
        self.broken = True
        error = (
            exc
            if isinstance(exc, Exception)
            else RedisConnectionError("connection closed while waiting for the reply")
        )
        while self.waiting:
            reply = self.waiting.popleft()
            if reply is not keep and not reply.done():
                reply.set_exception(error)
                # Its caller may be gone (cancelled) and never await it: mark the
                # exception seen so asyncio does not log it as lost; a caller
                # that awaits still gets it.
                reply.exception()


class _MultiplexedConnection:
    """One Redis connection that many tasks use at once (RESP pipelining).

    Commands are written in the order their futures are queued; Redis answers
    in that order, so the reader task resolves the oldest future with each
    reply. A cancelled caller's reply is read and dropped. When the connection
    breaks, every call waiting on it fails and the next call opens a new one.
    A connection belongs to one event loop: a call from another loop (tests
    that run an app on several loops) opens its own.
    """

    def __init__(
        self, new_connection: Callable[[], AbstractConnection], read_timeout: float | None
    ) -> None:
        # Connections have no socket timeout, so a write is queued at once (no
        # task per write, order kept); replies are awaited ``read_timeout`` at most.
        self._new_connection = new_connection
        self._read_timeout = read_timeout
        self._link: _Link | None = None
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._closes = 0  # calls begun before a close() fail, later ones reconnect

    async def execute(self, *args: str | int) -> object:
        loop = asyncio.get_running_loop()
        link = self._link
        if link is None or link.broken or link.loop is not loop:
            link = await self._open(loop, self._closes)
        packed = pack_command(args)
        reply: asyncio.Future[object] = loop.create_future()
        link.waiting.append(reply)
        try:
            # Queued and written with no await in between, so the order holds.
            await link.connection.send_packed_command(packed, check_health=False)
        except BaseException as exc:
            await self._drop(link, exc, keep=reply)
            raise
        if link.reader is None:
            link.reader = asyncio.create_task(self._read_replies(link))
        return await reply

    async def _open(self, loop: asyncio.AbstractEventLoop, closes: int) -> _Link:
        if self._connecting is None or self._connecting[0] is not loop:
            self._connecting = (loop, asyncio.Lock())
        async with self._connecting[1]:
            if self._closes != closes:
                raise RedisConnectionError("connection closed")
            link = self._link
            if link is not None and not link.broken and link.loop is loop:
                return link
            if link is not None and link.loop is not loop:
                await self._abandon(link)
            connection = self._new_connection()
            try:
                async with asyncio.timeout(self._read_timeout):
                    await connection.connect()  # type: ignore[no-untyped-call]
            except TimeoutError:
                await connection.disconnect(nowait=True)
                raise RedisTimeoutError("Redis did not answer the handshake") from None
            if self._closes != closes:
                await connection.disconnect(nowait=True)
                raise RedisConnectionError("connection closed")
            self._link = _Link(connection, loop)
            return self._link

    async def _read_replies(self, link: _Link) -> None:
        try:
            while link.waiting:
                value: object
                try:
                    value = await link.connection.read_response(timeout=self._read_timeout)
                except ResponseError as exc:  # an error reply: the connection is fine
                    value = exc
                if value is None:  # redis-py's answer to a read timing out
                    raise RedisTimeoutError("no reply from Redis in time")
                reply = link.waiting.popleft()
                if reply.done():
                    continue
                if isinstance(value, ResponseError):
                    reply.set_exception(value)
                else:
                    reply.set_result(value)
        except BaseException as exc:
            await self._drop(link, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            link.reader = None

    async def _drop(
        self, link: _Link, exc: BaseException, keep: asyncio.Future[object] | None = None
    ) -> None:
        link.fail(exc, keep)
        if self._link is link:
            self._link = None
        if link.reader is not None and link.reader is not asyncio.current_task():
            link.reader.cancel()
        await link.connection.disconnect(nowait=True)

    @staticmethod
    async def _abandon(link: _Link) -> None:
        """Forget a connection of another event loop, closing it if that loop is
        over (its waiting calls, if any, went with their loop)."""
        link.broken = True
        if link.loop.is_closed():
            with contextlib.suppress(RuntimeError, OSError):
                await link.connection.disconnect(nowait=True)

    async def close(self) -> None:
        self._closes += 1
        link, self._link = self._link, None
        if link is None:
            return
        if link.loop is asyncio.get_running_loop():
            await self._drop(link, RedisConnectionError("connection closed"))
        else:
            await self._abandon(link)


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
            lambda: pool.connection_class(**options),
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
            reply = await self._evalsha(keys, args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise SharedStateUnavailable(f"Redis unavailable: {exc}") from exc
        if not isinstance(reply, list):
            raise ResponseError(f"check_call.lua answered {reply!r}")
        outcome = _OUTCOMES[int(reply[0])]
        if len(reply) == 1:
            return CallVerdict(outcome)
        _, limit, remaining, reset_s, retry_after_s = (int(value) for value in reply)
        return CallVerdict(outcome, RateStatus(limit, remaining, reset_s, retry_after_s))

    async def _evalsha(self, keys: list[str], args: list[str | int]) -> object:
        try:
            return await self._hot.execute("EVALSHA", _CHECK_CALL_SHA, len(keys), *keys, *args)
        except NoScriptError:
            # A restarted or flushed server forgot the script: load it once more.
            await self._redis.script_load(CHECK_CALL_SCRIPT)
            return await self._hot.execute("EVALSHA", _CHECK_CALL_SHA, len(keys), *keys, *args)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._hot.close()
        await self._redis.aclose()
