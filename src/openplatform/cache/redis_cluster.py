"""Redis Cluster for the shared state (``redis+cluster://host:port,host:port``).

Every command the shared state sends is an ``EVALSHA`` whose keys share one
``{app}`` hash tag, so it belongs to one slot and runs on the master that
serves it, over that master's multiplexed connection
(:mod:`openplatform.cache.redis_connection`) — the same client cost per call
as on a single Redis. The measurement that made this module ours rather than
a cluster client library's: the client CPU per ``EVALSHA`` of redis-py's
``RedisCluster``, coredis and valkey-glide is 2.5-7× that connection's
(``bench/cluster_clients.py``; the figures are in ``bench/README.md``). What a
cluster client must do besides is small and lives here:

* the slot map, from ``CLUSTER SLOTS`` of any node that answers, refreshed
  after a ``MOVED`` reply or a broken connection (at most every
  ``REFRESH_INTERVAL_S``: a failover is followed without a storm of refreshes);
* ``MOVED`` (the slot has a new master: the command did not run, so it is
  sent there) and ``ASK`` (a slot half-way through a migration: ``ASKING``
  and the command, back to back on the target's connection);
* keyless commands (``SCRIPT LOAD``, ``PING``) go to every master.

A connection that breaks or does not answer in time fails the call (the
caller answers 2) and is never retried: the script may have run, and a retry
would see its own nonce as a replay. ``CLUSTERDOWN`` and ``TRYAGAIN`` are
outages too. During a failover the calls of the dead master's slots answer 2
until a replica has taken its place and a refresh has seen it.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import time
from urllib.parse import urlsplit

from openplatform.cache.redis_connection import (
    DEFAULT_TIMEOUT_S,
    RedisAddress,
    RedisConnectionError,
    RedisReplyError,
    SharedConnection,
)

__all__ = ["CLUSTER_SCHEME", "ClusterConnection", "cluster_addresses", "key_slot"]

CLUSTER_SCHEME = "redis+cluster"
SLOTS = 16384
REFRESH_INTERVAL_S = 0.25
MAX_REDIRECTS = 5

_Node = tuple[str, int]


def key_slot(key: str) -> int:
    """The cluster slot of ``key``: CRC16 (XMODEM, which ``crc_hqx`` is) of
    its hash tag — the part between the first ``{`` and the next ``}``, when
    not empty — or of the whole key, modulo 16384."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % SLOTS


def cluster_addresses(
    url: str, *, default_timeout_s: float = DEFAULT_TIMEOUT_S
) -> list[RedisAddress]:
    """The seed nodes of ``redis+cluster://[[user]:password@]host:port,host:port[?options]``,
    each with the URL's credentials and options (those of ``redis://``, no
    database: a cluster has only database 0)."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"not a Redis Cluster URL: {parts.scheme!r}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if parts.path.strip("/"):
        raise ValueError("a Redis Cluster URL names no database")
    nodes = [host.strip() for host in hosts.split(",") if host.strip()]
    if not nodes:
        raise ValueError("a Redis Cluster URL names at least one host:port")
    prefix = f"{userinfo}@" if userinfo else ""
    query = f"?{parts.query}" if parts.query else ""
    return [
        RedisAddress.from_url(f"redis://{prefix}{node}{query}", default_timeout_s=default_timeout_s)
        for node in nodes
    ]


# Commands whose first argument is their only key (what the shared state sends
# besides scripts: bump_generation's INCR, acquire_lease's SET … NX PX).
_ONE_KEY_COMMANDS = frozenset({"INCR", "GET", "DEL", "SET"})


class ClusterConnection:
    """The connections of one process to a Redis Cluster's masters, routed by slot."""

    def __init__(self, seeds: list[RedisAddress]) -> None:
        self._template = seeds[0]
        self._seeds: list[_Node] = [(a.host, a.port) for a in seeds]
        self._slots: list[_Node | None] = [None] * SLOTS
        self._masters: list[_Node] = []
        self._connections: dict[_Node, SharedConnection] = {}
        self._stale = True
        self._refreshed_at = -REFRESH_INTERVAL_S
        self._refreshing: asyncio.Task[None] | None = None

    async def execute(self, *args: str | int) -> object:
        """One command on the master of its slot (``EVALSHA``/``EVAL`` with
        keys, or a one-key command such as ``INCR``), or on every master
        (keyless: the first reply is returned)."""
        if self._stale:
            await self._refresh()
        name = str(args[0]).upper()
        if name in ("EVALSHA", "EVAL") and int(args[2]) > 0:
            return await self._on_slot(key_slot(str(args[3])), args)
        if name in _ONE_KEY_COMMANDS:
            return await self._on_slot(key_slot(str(args[1])), args)
        masters = self._masters or self._seeds
        replies = await asyncio.gather(*(self._call(node, args) for node in masters))
        return replies[0]

    async def _on_slot(self, slot: int, args: tuple[str | int, ...]) -> object:
        node = self._slots[slot]
        asking = False
        for _ in range(MAX_REDIRECTS):
            if node is None:
                self._stale = True
                raise RedisConnectionError(f"no master serves slot {slot} now")
            try:
                if asking:
                    _, reply = await self._connection(node).pipeline([("ASKING",), args])
                    return reply
                return await self._call(node, args)
            except RedisReplyError as exc:
                kind = exc.kind
                if kind not in ("MOVED", "ASK"):
                    if kind in ("CLUSTERDOWN", "TRYAGAIN"):
                        self._stale = True
                        raise RedisConnectionError(f"Redis Cluster: {exc}") from None
                    raise
                # "MOVED <slot> <host>:<port>": it did not run; the slot lives there now.
                target = str(exc).split()[2]
                host, _, port = target.rpartition(":")
                node = (host or node[0], int(port))
                asking = kind == "ASK"
                if not asking:
                    self._slots[slot] = node
                    self._stale = True
        raise RedisConnectionError(f"slot {slot} redirected more than {MAX_REDIRECTS} times")

    async def _call(self, node: _Node, args: tuple[str | int, ...]) -> object:
        try:
            return await self._connection(node).execute(*args)
        except RedisConnectionError:
            self._stale = True  # a master may have died: look again soon
            raise

    def _connection(self, node: _Node) -> SharedConnection:
        connection = self._connections.get(node)
        if connection is None:
            address = dataclasses.replace(self._template, host=node[0], port=node[1])
            connection = self._connections[node] = SharedConnection(address)
        return connection

    async def _refresh(self) -> None:
        """Read the slot map once (concurrent callers share the read), at most
        every ``REFRESH_INTERVAL_S``; the old map stays when no node answers."""
        if time.monotonic() - self._refreshed_at < REFRESH_INTERVAL_S:
            return
        task = self._refreshing
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._refreshing = asyncio.ensure_future(self._read_slots())
        await asyncio.shield(task)

    async def _read_slots(self) -> None:
        self._refreshed_at = time.monotonic()
        known = list(dict.fromkeys([*self._masters, *self._seeds, *self._connections]))
        failures = []
        for node in known:
            try:
                reply = await self._connection(node).execute("CLUSTER", "SLOTS")
            except (RedisConnectionError, RedisReplyError) as exc:
                failures.append(f"{node[0]}:{node[1]}: {exc}")
                continue
            self._apply(node, reply)
            self._stale = False
            return
        raise RedisConnectionError("no Redis Cluster node answered: " + "; ".join(failures))

    def _apply(self, asked: _Node, reply: object) -> None:
        slots: list[_Node | None] = [None] * SLOTS
        masters: dict[_Node, None] = {}
        for entry in reply if isinstance(reply, list) else []:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            node = (host or asked[0], int(master[1]))
            masters[node] = None
            slots[start : end + 1] = [node] * (end - start + 1)
        self._slots = slots
        self._masters = list(masters)

    async def close(self) -> None:
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            await connection.close()
