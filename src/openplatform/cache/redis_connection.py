"""One Redis connection that many tasks use at once (RESP2 pipelining).

The hot path needs little of a Redis client: connect, authenticate, write a
command, read its reply. It gets exactly that here, on asyncio's transport
and hiredis' ``Reader`` — the reply parser redis-py uses too, whose small
public API (``feed``/``gets``) has not changed in a decade — rather than on
redis-py's connection classes: their handshake is redis-py's own business
(8.x switched to RESP3 ``HELLO`` and broke a reconnect built on them), and
nothing here should follow it. The handshake is ours and fixed: RESP2 (every
Redis and Valkey speaks it), then ``AUTH``, ``SELECT`` and ``CLIENT SETNAME``
as the URL asks.

Commands are written in the order their replies are queued; Redis answers in
that order, so each reply resolves the oldest waiting future — in
``data_received``, with no reader task and no per-call timeout task. A
cancelled caller's reply is read and dropped. When the connection breaks or a
reply is late, every call waiting on it fails and the next call opens a new
connection. A connection belongs to one event loop: a call from another loop
(tests that run an app on several loops) opens its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

__all__ = [
    "RedisAddress",
    "RedisConnectionError",
    "RedisReplyError",
    "RedisTimeoutError",
    "SharedConnection",
    "pack_command",
]

DEFAULT_TIMEOUT_S = 5.0


class RedisConnectionError(ConnectionError):
    """Redis cannot be reached, or the connection broke."""


class RedisTimeoutError(RedisConnectionError, TimeoutError):
    """Redis did not answer in time; the connection was dropped."""


class RedisReplyError(Exception):
    """An error reply (``-ERR …``, ``-NOSCRIPT …``): the connection is fine."""

    @property
    def kind(self) -> str:
        """The error's first word: ``NOSCRIPT``, ``ERR``, ``WRONGTYPE``…"""
        return str(self).split(" ", 1)[0]


def pack_command(args: tuple[str | int, ...]) -> bytes:
    """One RESP command (an array of bulk strings, UTF-8)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else b"%d" % arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _float_option(options: dict[str, list[str]], name: str) -> float | None:
    values = options.get(name)
    if not values or values[-1] in ("", "None", "none"):
        return None
    try:
        value = float(values[-1])
    except ValueError:
        raise ValueError(f"Redis URL option {name} must be a number of seconds") from None
    if value <= 0:
        raise ValueError(f"Redis URL option {name} must be positive")
    return value


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where and how to connect, from a ``redis://``, ``rediss://`` or
    ``unix://`` URL: ``redis://[[user]:password@]host[:port][/db]`` with the
    options ``socket_timeout`` (seconds a reply may take; default
    ``default_timeout_s``: ``OPENPLATFORM_CACHE_TIMEOUT_S`` for the server, else 5),
    ``socket_connect_timeout`` (default: the same), ``client_name``, ``db``
    and, for ``rediss://``, ``ssl_cert_reqs=none|optional|required`` and
    ``ssl_ca_certs``."""

    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # a unix socket
    tls: bool = False
    tls_verify: ssl.VerifyMode = ssl.CERT_REQUIRED
    tls_ca_file: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0
    client_name: str | None = None
    read_timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_TIMEOUT_S

    @classmethod
    def from_url(cls, url: str, *, default_timeout_s: float = DEFAULT_TIMEOUT_S) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL: {parts.scheme!r}")
        options = parse_qs(parts.query)
        db_text = options.get("db", [""])[-1]
        if parts.scheme != "unix" and parts.path.strip("/"):
            db_text = parts.path.strip("/")
        try:
            db = int(db_text or 0)
        except ValueError:
            raise ValueError(f"Redis database must be a number, got {db_text!r}") from None
        read_timeout = _float_option(options, "socket_timeout") or default_timeout_s
        connect_timeout = _float_option(options, "socket_connect_timeout") or read_timeout
        verify = {
            "none": ssl.CERT_NONE,
            "optional": ssl.CERT_OPTIONAL,
            "required": ssl.CERT_REQUIRED,
        }.get(options.get("ssl_cert_reqs", ["required"])[-1].lower())
        if verify is None:
            raise ValueError("Redis URL option ssl_cert_reqs must be none, optional or required")
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError("Redis URL has a malformed port") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            path=unquote(parts.path) if parts.scheme == "unix" else None,
            tls=parts.scheme == "rediss",
            tls_verify=verify,
            tls_ca_file=options.get("ssl_ca_certs", [None])[-1],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            db=db,
            client_name=options.get("client_name", [None])[-1],
            read_timeout_s=read_timeout,
            connect_timeout_s=connect_timeout,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        if self.tls_verify is ssl.CERT_NONE:
            context.check_hostname = False
        context.verify_mode = self.tls_verify
        return context

    def handshake(self) -> list[tuple[str | int, ...]]:
        """The commands that set a new connection up (RESP2 throughout)."""
        commands: list[tuple[str | int, ...]] = []
        if self.password is not None:
            auth: tuple[str | int, ...] = ("AUTH", self.password)
            commands.append(auth if self.username is None else ("AUTH", self.username, *auth[1:]))
        if self.db:
            commands.append(("SELECT", self.db))
        if self.client_name:
            commands.append(("CLIENT", "SETNAME", self.client_name))
        return commands


class _Link(asyncio.Protocol):
    """One connection and the calls waiting for its replies, oldest first.
    A broken link is dropped whole, never reused."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout_s: float) -> None:
        self.loop = loop
        self.read_timeout_s = read_timeout_s
        self.waiting: deque[asyncio.Future[object]] = deque()
        self.transport: asyncio.Transport | None = None
        self.broken = False
        self._reader = hiredis.Reader(
            protocolError=RedisConnectionError, replyError=RedisReplyError
        )
        self._deadline: asyncio.TimerHandle | None = None
        # commands of this loop iteration, written together when it ends
        self._outgoing: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are ones.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if not self.waiting:
                    raise RedisConnectionError("Redis sent a reply nobody asked for")
                future = self.waiting.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(reply, RedisReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except RedisConnectionError as exc:
            self.fail(exc)
            return
        self._rearm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    # -- calls ----------------------------------------------------------------

    def send(self, packed: bytes) -> asyncio.Future[object]:
        """Queue one command; the future gets its reply.

        Commands sent during one turn of the event loop go out in one write
        at its end (each request's handler runs up to its Redis call in the
        same turn when requests come in together): one system call and one
        packet instead of one per command, and their replies come back
        together too. Order is kept — replies are matched by position."""
        if self.broken or self.transport is None:
            raise RedisConnectionError("connection to Redis is closed")
        reply: asyncio.Future[object] = self.loop.create_future()
        self.waiting.append(reply)
        if not self._outgoing:
            self.loop.call_soon(self._flush)
        self._outgoing.append(packed)
        if self._deadline is None:
            self._rearm()
        return reply

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.broken or self.transport is None:
            return  # fail() already failed every waiting call
        self.transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))

    def _rearm(self) -> None:
        """One timer for the oldest waiting reply: replies come in order, so a
        late one holds up all the others and the link is dropped."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.waiting and not self.broken:
            self._deadline = self.loop.call_later(self.read_timeout_s, self._late)

    def _late(self) -> None:
        self._deadline = None
        self.fail(RedisTimeoutError(f"no reply from Redis within {self.read_timeout_s} s"))

    def fail(self, error: Exception) -> None:
        """Close the link and fail every waiting call: its reply will never come."""
        self.broken = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        while self.waiting:
            reply = self.waiting.popleft()
            if not reply.done():
                reply.set_exception(error)
                # Its caller may be gone (cancelled) and never await it: mark
                # the exception seen so asyncio does not log it as lost.
                reply.exception()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


class SharedConnection:
    """The multiplexed connection of one process (per event loop)."""

    def __init__(self, address: RedisAddress) -> None:
        self._address = address
        self._link: _Link | None = None
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._closes = 0  # calls begun before a close() fail, later ones reconnect

    async def execute(self, *args: str | int) -> object:
        """Send one command and await its reply (``RedisReplyError`` for an
        error reply; ``RedisConnectionError``/``RedisTimeoutError`` when the
        connection failed — the command may or may not have run)."""
        return await (await self._current()).send(pack_command(args))

    async def pipeline(self, commands: list[tuple[str | int, ...]]) -> list[object]:
        """Send ``commands`` back to back (no other caller's command between
        them, e.g. ``ASKING`` and the command it is for) and return their
        replies in order; the first error reply (or failure) is raised."""
        link = await self._current()
        waiting = [link.send(pack_command(command)) for command in commands]
        replies = await asyncio.gather(*waiting, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def _current(self) -> _Link:
        loop = asyncio.get_running_loop()
        link = self._link
        if link is None or link.broken or link.loop is not loop:
            link = await self._open(loop, self._closes)
        return link

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
                self._abandon(link)
            link = await self._connect(loop)
            if self._closes != closes:
                link.fail(RedisConnectionError("connection closed"))
                raise RedisConnectionError("connection closed")
            self._link = link
            return link

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Link:
        address = self._address
        link = _Link(loop, address.read_timeout_s)
        try:
            async with asyncio.timeout(address.connect_timeout_s):
                if address.path is not None:
                    await loop.create_unix_connection(lambda: link, address.path)
                else:
                    await loop.create_connection(
                        lambda: link,
                        address.host,
                        address.port,
                        ssl=address.ssl_context(),
                        server_hostname=address.host if address.tls else None,
                    )
                replies = [link.send(pack_command(c)) for c in address.handshake()]
                for command, reply in zip(address.handshake(), replies, strict=True):
                    try:
                        await reply
                    except RedisReplyError as exc:
                        raise RedisConnectionError(
                            f"Redis refused {command[0]} when connecting: {exc}"
                        ) from None
        except TimeoutError:
            link.fail(RedisTimeoutError("Redis did not answer in time when connecting"))
            raise RedisTimeoutError("Redis did not answer in time when connecting") from None
        except OSError as exc:
            link.fail(RedisConnectionError(str(exc)))
            if isinstance(exc, RedisConnectionError):
                raise
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        return link

    @staticmethod
    def _abandon(link: _Link) -> None:
        """Forget a connection of another event loop, closing it if that loop is
        over (its waiting calls, if any, went with their loop)."""
        link.broken = True
        if link.loop.is_closed() and link.transport is not None:
            with contextlib.suppress(RuntimeError, OSError):
                link.transport.abort()

    async def close(self) -> None:
        self._closes += 1
        link, self._link = self._link, None
        if link is None:
            return
        if link.loop is asyncio.get_running_loop():
            link.fail(RedisConnectionError("connection closed"))
        else:
            self._abandon(link)
