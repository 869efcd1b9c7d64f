"""Shared fixtures: the real services, parametrized backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from tests.services import (
    PG_HOST,
    PG_PORT,
    REDIS_HOST,
    REDIS_PORT,
    port_open,
    service_unavailable,
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, created through the
    ``postgres`` user and dropped afterwards."""
    why = port_open(PG_HOST, PG_PORT)
    if why:
        service_unavailable("PostgreSQL", why)
    import asyncpg

    name = f"openplatform_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", database="postgres"
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        service_unavailable("PostgreSQL", str(exc))
    yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The local Redis server; tests use key prefixes of their own."""
    why = port_open(REDIS_HOST, REDIS_PORT)
    if why:
        service_unavailable("Redis", why)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
