"""The hot path's own Redis connection: URL, handshake, and the one library
API it builds on (hiredis' ``Reader``)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import hiredis
import pytest
import uvloop

from openplatform.app import build_services
from openplatform.cache import CallCheck, SharedStateUnavailable
from openplatform.cache.redis import RedisSharedState
from openplatform.cache.redis_cluster import cluster_addresses
from openplatform.cache.redis_connection import (
    DEFAULT_TIMEOUT_S,
    RedisAddress,
    RedisConnectionError,
    RedisReplyError,
    SharedConnection,
    pack_command,
)
from openplatform.config import Settings
from tests.services import service_unavailable


def test_hiredis_reader_still_parses_what_the_connection_relies_on() -> None:
    """If a hiredis release changes ``Reader`` (feed/gets, error replies as
    values, ``False`` for an incomplete reply), this names the version."""
    version = hiredis.__version__
    reader = hiredis.Reader(protocolError=RedisConnectionError, replyError=RedisReplyError)
    reader.feed(b"*5\r\n:0\r\n:10\r\n:9\r\n:6\r\n:0\r\n-NOSCRIPT No matching script\r\n+PONG")
    assert reader.gets() == [0, 10, 9, 6, 0], f"hiredis {version}: array of integers"
    error = reader.gets()
    assert isinstance(error, RedisReplyError), f"hiredis {version}: error replies as values"
    assert error.kind == "NOSCRIPT", f"hiredis {version}: error reply text"
    assert reader.gets() is False, f"hiredis {version}: an incomplete reply is False"
    reader.feed(b"\r\n$3\r\nabc\r\n")
    assert reader.gets() == b"PONG", f"hiredis {version}: a status reply, fed in two pieces"
    assert reader.gets() == b"abc", f"hiredis {version}: bulk strings as bytes"
    reader.feed(b"!bad\r\n")
    with pytest.raises(RedisConnectionError):
        reader.gets()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisAddress()),
        ("redis://localhost", RedisAddress(host="localhost")),
        (
            "redis://:p%40ss@h:7000/3?client_name=op&socket_timeout=0.5",
            RedisAddress(
                host="h",
                port=7000,
                password="p@ss",
                db=3,
                client_name="op",
                read_timeout_s=0.5,
                connect_timeout_s=0.5,
            ),
        ),
        (
            "redis://user:pw@h?db=2&socket_connect_timeout=2",
            RedisAddress(host="h", username="user", password="pw", db=2, connect_timeout_s=2),
        ),
        ("unix:///run/redis.sock?db=1", RedisAddress(path="/run/redis.sock", db=1)),
        (
            "rediss://h:6380?ssl_cert_reqs=none",
            RedisAddress(host="h", port=6380, tls=True, tls_verify=ssl.CERT_NONE),
        ),
    ],
)
def test_address_from_url(url: str, expected: RedisAddress) -> None:
    assert RedisAddress.from_url(url) == expected


def test_default_timeouts_bound_every_call() -> None:
    address = RedisAddress.from_url("redis://h")
    assert address.read_timeout_s == address.connect_timeout_s == DEFAULT_TIMEOUT_S


def test_the_cache_timeout_setting_is_the_default_the_url_overrides() -> None:
    address = RedisAddress.from_url("redis://h", default_timeout_s=0.25)
    assert (address.read_timeout_s, address.connect_timeout_s) == (0.25, 0.25)
    address = RedisAddress.from_url("redis://h?socket_timeout=2", default_timeout_s=0.25)
    assert (address.read_timeout_s, address.connect_timeout_s) == (2.0, 2.0)
    seeds = cluster_addresses("redis+cluster://h:7000,h:7001", default_timeout_s=0.25)
    assert [s.read_timeout_s for s in seeds] == [0.25, 0.25]


async def test_the_server_bounds_redis_calls_by_the_cache_timeout(tmp_path: Path) -> None:
    """``OPENPLATFORM_CACHE_TIMEOUT_S`` reaches the server's Redis connection:
    a Redis that accepts and never answers fails the call after 0.2 s
    (instead of the default 5 s, past the 3 s this test waits)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = Settings.from_env(
        {
            "OPENPLATFORM_DATA_DIR": str(tmp_path),
            "OPENPLATFORM_CACHE_URL": f"redis://127.0.0.1:{port}/0",
            "OPENPLATFORM_CACHE_TIMEOUT_S": "0.2",
        }
    )
    services = build_services(settings)
    try:
        with pytest.raises(SharedStateUnavailable):
            await asyncio.wait_for(services.shared_state.check_call(CallCheck(app="1")), 3)
    finally:
        await services.close()
        server.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "redis://h/x",
        "redis://h:port",
        "redis://h?socket_timeout=soon",
        "redis://h?socket_timeout=-1",
        "rediss://h?ssl_cert_reqs=maybe",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        RedisAddress.from_url(url)


def test_handshake_is_auth_select_setname() -> None:
    address = RedisAddress.from_url("redis://u:pw@h/4?client_name=me")
    assert address.handshake() == [
        ("AUTH", "u", "pw"),
        ("SELECT", 4),
        ("CLIENT", "SETNAME", "me"),
    ]
    assert RedisAddress.from_url("redis://h").handshake() == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[int]:
    """A Redis of our own that wants a password (the shared one has none)."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_unavailable("Redis", "redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            process.poll()
            if process.returncode is not None:
                service_unavailable("Redis", "redis-server did not start")
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def test_password_and_database_from_the_url(redis_with_password: int) -> None:
    url = f"redis://:s3cret@127.0.0.1:{redis_with_password}/5?client_name=op-test"
    connection = SharedConnection(RedisAddress.from_url(url))
    try:
        assert await connection.execute("SET", "k", "v") == b"OK"
        assert await connection.execute("CLIENT", "GETNAME") == b"op-test"
        listing = await connection.execute("CLIENT", "LIST")
        assert isinstance(listing, bytes)
        assert b" db=5 " in listing
        with pytest.raises(RedisReplyError) as raised:
            await connection.execute("INCR", "k")
        assert raised.value.kind == "ERR"
        assert await connection.execute("GET", "k") == b"v"  # an error reply keeps the link
    finally:
        await connection.close()


async def test_wrong_password_is_unavailable(redis_with_password: int) -> None:
    state = RedisSharedState(f"redis://:wrong@127.0.0.1:{redis_with_password}/0", "op")
    try:
        with pytest.raises(SharedStateUnavailable) as raised:
            await state.check_call(CallCheck(app="1", nonce="n"))
        assert isinstance(raised.value.__cause__, RedisConnectionError)
        assert "AUTH" in str(raised.value.__cause__)
    finally:
        await state.close()


def test_works_on_uvloop(redis_url: str) -> None:
    """The servers run uvloop (whose transports are not asyncio classes)."""

    async def round_trip() -> object:
        connection = SharedConnection(RedisAddress.from_url(redis_url))
        try:
            return await connection.execute("PING")
        finally:
            await connection.close()

    assert uvloop.run(round_trip()) == b"PONG"


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


async def test_commands_of_one_loop_turn_go_out_in_one_write() -> None:
    """Calls made together (requests arriving together) share one write; the
    replies, coming back together, reach their callers in order."""
    from openplatform.cache.redis_connection import _Link

    link = _Link(asyncio.get_running_loop(), read_timeout_s=5.0)
    transport = _RecordingTransport()
    link.connection_made(transport)
    replies = [link.send(pack_command(("ECHO", str(i)))) for i in range(3)]
    assert transport.writes == []  # not yet: the turn has not ended
    await asyncio.sleep(0)
    assert transport.writes == [b"".join(pack_command(("ECHO", str(i))) for i in range(3))]
    link.data_received(b"$1\r\n0\r\n$1\r\n1\r\n$1\r\n2\r\n")
    assert [await reply for reply in replies] == [b"0", b"1", b"2"]
    later = link.send(pack_command(("PING",)))
    await asyncio.sleep(0)
    assert transport.writes[1:] == [pack_command(("PING",))]
    link.fail(RedisConnectionError("closed by the test"))
    with pytest.raises(RedisConnectionError):
        await later
