"""The throwaway servers the fault tests stop and start really stop and come
back on the same port."""

from __future__ import annotations

import asyncio
import socket

import asyncpg

from tests.throwaway_services import throwaway_postgres, throwaway_redis


def _redis_ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_redis_stops_and_starts_on_the_same_port() -> None:
    with throwaway_redis() as redis:
        assert _redis_ping(redis.port) == b"+PONG\r\n"
        redis.stop()
        assert not redis.running
        redis.start()
        assert _redis_ping(redis.port) == b"+PONG\r\n"


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        value: int = await conn.fetchval("SELECT 1")
        return value
    finally:
        await conn.close()


def test_postgres_stops_and_starts_on_the_same_port() -> None:
    with throwaway_postgres() as postgres:
        assert asyncio.run(_select_one(postgres.url)) == 1
        postgres.stop()
        postgres.start()
        assert asyncio.run(_select_one(postgres.url)) == 1
