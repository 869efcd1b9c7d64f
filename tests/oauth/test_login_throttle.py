"""Sign-in limits (RFC 6749 §10.10, PROTOCOL §2) count failed password
checks only, and hold across server processes: two processes sharing Redis
count the same failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from openplatform.cache import SharedState
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from openplatform.oauth.login_throttle import LoginThrottle


@pytest.fixture(params=["memory", "redis"])
async def two_processes(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[SharedState, SharedState]]:
    """Two handles on one shared state, as two server processes hold them."""
    prefix = f"optest-login-{uuid.uuid4().hex[:12]}"
    if request.param == "memory":
        state = MemorySharedState(prefix=prefix)
        yield state, state
        await state.close()
        return
    url: str = request.getfixturevalue("redis_url")
    first, second = RedisSharedState(url, prefix=prefix), RedisSharedState(url, prefix=prefix)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_account_limit_is_shared(two_processes: tuple[SharedState, SharedState]) -> None:
    throttles = [LoginThrottle(state, failures_per_account=4) for state in two_processes]
    waits = [
        (await throttles[i % 2].attempt("Alice", f"10.0.0.{i}")).retry_after_s for i in range(5)
    ]
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4] > 0
    # Case and surrounding spaces do not make another account.
    assert (await throttles[0].attempt(" alice ", "10.0.0.99")).retry_after_s > 0
    assert (await throttles[1].attempt("bob", "10.0.0.99")).retry_after_s == 0


async def test_ip_limit_is_shared_and_refusals_consume_nothing(
    two_processes: tuple[SharedState, SharedState],
) -> None:
    throttles = [
        LoginThrottle(state, failures_per_account=1, failures_per_ip=3) for state in two_processes
    ]
    waits = [
        (await throttles[i % 2].attempt(f"user{i}", "192.0.2.1")).retry_after_s for i in range(4)
    ]
    assert waits == [0, 0, 0, waits[3]]
    assert waits[3] > 0
    # The refused attempt consumed nothing from user3's counter (1 attempt allowed).
    assert (await throttles[0].attempt("user3", "192.0.2.2")).retry_after_s == 0


async def test_a_success_counts_nothing_and_clears_the_account(
    two_processes: tuple[SharedState, SharedState],
) -> None:
    first, second = (
        LoginThrottle(state, failures_per_account=3, failures_per_ip=5) for state in two_processes
    )
    for _ in range(2):  # two failures
        assert (await first.attempt("carol", "198.51.100.7")).retry_after_s == 0
    for _ in range(50):  # then fifty right passwords, from both processes
        attempt = await second.attempt("carol", "198.51.100.7")
        assert attempt.retry_after_s == 0
        await first.succeeded(attempt)
    # the account's failures were cleared; the IP holds the two failures
    for _ in range(3):
        assert (await first.attempt("carol", "198.51.100.7")).retry_after_s == 0
    refused = await second.attempt("carol", "198.51.100.7")
    assert refused.retry_after_s > 0
    assert refused.headers()["Retry-After"] == str(refused.retry_after_s)


async def test_parallel_failures_never_exceed_the_limit(
    two_processes: tuple[SharedState, SharedState],
) -> None:
    """100 attempts at once, split over two processes: exactly 10 go ahead."""
    throttles = [LoginThrottle(state, failures_per_account=10) for state in two_processes]
    attempts = await asyncio.gather(
        *(throttles[i % 2].attempt("dave", f"203.0.113.{i}") for i in range(100))
    )
    assert sum(a.retry_after_s == 0 for a in attempts) == 10


async def test_zero_turns_a_limit_off(two_processes: tuple[SharedState, SharedState]) -> None:
    state = two_processes[0]
    no_ip_limit = LoginThrottle(state, failures_per_account=2, failures_per_ip=0)
    waits = [(await no_ip_limit.attempt(f"u{i}", "192.0.2.9")).retry_after_s for i in range(300)]
    assert waits == [0] * 300
    off = LoginThrottle(state, failures_per_account=0, failures_per_ip=0)
    attempt = await off.attempt("eve", "192.0.2.9")
    assert (attempt.retry_after_s, attempt.headers()) == (0, {})
    await off.succeeded(attempt)
