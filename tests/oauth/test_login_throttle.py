"""Sign-in limits (RFC 6749 §10.10) hold across server processes: two
processes sharing Redis count the same attempts."""

from __future__ import annotations

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
    throttles = [LoginThrottle(state, per_account=4, per_ip=100) for state in two_processes]
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
    throttles = [LoginThrottle(state, per_account=1, per_ip=3) for state in two_processes]
    waits = [
        (await throttles[i % 2].attempt(f"user{i}", "192.0.2.1")).retry_after_s for i in range(4)
    ]
    assert waits == [0, 0, 0, waits[3]]
    assert waits[3] > 0
    # The refused attempt consumed nothing from user3's counter (1 attempt allowed).
    assert (await throttles[0].attempt("user3", "192.0.2.2")).retry_after_s == 0
