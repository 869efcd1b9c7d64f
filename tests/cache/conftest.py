"""Cache fixtures: every shared-state test runs on memory, on Redis and on a
Redis Cluster."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from openplatform.cache import SharedState
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState


class FakeClock:
    """A monotonic microsecond clock that moves only when told to."""

    def __init__(self) -> None:
        self.now_us = 1_000_000_000_000

    def __call__(self) -> int:
        return self.now_us

    def advance(self, seconds: float) -> None:
        self.now_us += round(seconds * 1_000_000)


@dataclass
class Backend:
    name: str
    state: SharedState
    prefix: str
    # let ``seconds`` pass for the backend: a fake clock, or real sleep on Redis
    advance: Callable[[float], Awaitable[None]]
    redis_url: str | None = None


def unique_prefix() -> str:
    return f"optest-{uuid.uuid4().hex[:12]}"


async def delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    prefix = unique_prefix()
    if request.param == "memory":
        clock = FakeClock()

        async def advance_clock(seconds: float) -> None:
            clock.advance(seconds)

        memory = MemorySharedState(prefix, clock=clock)
        yield Backend("memory", memory, prefix, advance_clock)
        await memory.close()
        return
    if request.param == "cluster":
        # the cluster lives for this test session only: no clean-up needed
        cluster_url: str = request.getfixturevalue("redis_cluster_url")
        cluster = RedisSharedState(cluster_url, prefix)
        yield Backend("cluster", cluster, prefix, asyncio.sleep, cluster_url)
        await cluster.close()
        return
    url: str = request.getfixturevalue("redis_url")
    redis = RedisSharedState(url, prefix)
    yield Backend("redis", redis, prefix, asyncio.sleep, url)
    await redis.close()
    await delete_prefix(url, prefix)


@pytest.fixture
def shared_state(backend: Backend) -> SharedState:
    return backend.state


@pytest.fixture
async def redis_state(redis_url: str) -> AsyncIterator[tuple[RedisSharedState, str, str]]:
    """A Redis backend alone, with its URL and prefix (Redis-only tests)."""
    prefix = unique_prefix()
    state = RedisSharedState(redis_url, prefix)
    yield state, redis_url, prefix
    await state.close()
    await delete_prefix(redis_url, prefix)
