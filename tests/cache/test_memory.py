"""Memory backend: exact under threads, bounded memory (expired entries go)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from openplatform.cache import CallCheck, Outcome, RateLimitRule
from openplatform.cache.memory import MemorySharedState
from tests.cache.conftest import FakeClock

APP = "ak_mem"
THREADS = 8


def race_threads(state: MemorySharedState, checks: list[list[CallCheck]]) -> list[CallCheck]:
    """Each thread runs its checks on its own event loop once all are ready."""
    barrier = threading.Barrier(len(checks))

    def run(batch: list[CallCheck]) -> list[CallCheck]:
        async def go() -> list[CallCheck]:
            barrier.wait()
            return [c for c in batch if (await state.check_call(c)).outcome is Outcome.OK]

        return asyncio.run(go())

    with ThreadPoolExecutor(len(checks)) as pool:
        return [c for accepted in pool.map(run, checks) for c in accepted]


def test_threads_race_on_one_nonce() -> None:
    state = MemorySharedState("t")
    check = CallCheck(app=APP, nonce="the-one")
    assert len(race_threads(state, [[check] * 200 for _ in range(THREADS)])) == 1


def test_threads_share_one_rate_counter() -> None:
    state = MemorySharedState("t")
    check = CallCheck(app=APP, limits=(RateLimitRule("app", 100, 600),))
    assert len(race_threads(state, [[check] * 150 for _ in range(THREADS)])) == 100


def test_threads_never_accept_a_call_id_twice() -> None:
    state = MemorySharedState("t")
    batch = [CallCheck(app=APP, call_id_key="k", call_id=str(i)) for i in range(300)]
    accepted = race_threads(state, [batch for _ in range(THREADS)])
    assert max(Counter(c.call_id for c in accepted).values()) == 1
    assert "299" in {c.call_id for c in accepted}


async def test_expired_entries_are_dropped() -> None:
    clock = FakeClock()
    state = MemorySharedState("t", clock=clock)
    rule = RateLimitRule("app", 1000, 10)
    for i in range(1000):
        check = CallCheck(
            app=APP,
            nonce=f"n{i}",
            nonce_ttl_s=5,
            call_id_key="k",
            call_id=str(i),
            call_id_ttl_s=20,
            limits=(rule,),
        )
        assert (await state.check_call(check)).outcome is Outcome.OK
    assert len(state) == 1002  # 1000 nonces, one call_id mark, one counter
    clock.advance(11)
    await state.check_call(CallCheck(app=APP))
    assert len(state) == 1  # the call_id mark is still live
    clock.advance(10)
    await state.check_call(CallCheck(app=APP))
    assert len(state) == 0


async def test_refreshed_entries_survive_the_sweep() -> None:
    clock = FakeClock()
    state = MemorySharedState("t", clock=clock)
    for i in range(10):
        assert await state.accept_call_id(APP, "k", str(i))
        clock.advance(86400)  # each accepted call_id keeps the mark 7 days more
    assert not await state.accept_call_id(APP, "k", "3")
    assert len(state) == 1


async def test_steady_rate_at_the_limit_is_always_allowed() -> None:
    clock = FakeClock()
    state = MemorySharedState("t", clock=clock)
    rule = RateLimitRule("app", limit=10, window_s=1)  # one call per 100 ms
    for _ in range(10):
        assert (await state.hit_rate_limits(APP, [rule])).outcome is Outcome.OK
    for _ in range(200):  # then exactly one call per interval: never refused
        assert (await state.hit_rate_limits(APP, [rule])).outcome is Outcome.RATE_LIMITED
        clock.advance(0.1)
        verdict = await state.hit_rate_limits(APP, [rule])
        assert verdict.outcome is Outcome.OK
        assert verdict.rate is not None
        assert verdict.rate.remaining == 0
