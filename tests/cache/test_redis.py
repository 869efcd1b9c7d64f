"""Redis backend: real races between OS processes, key layout, script reload."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from openplatform.cache import CallCheck, Outcome, RateLimitRule
from openplatform.cache import redis as redis_backend
from openplatform.cache.redis import RedisSharedState
from tests.cache import workers

RedisFixture = tuple[RedisSharedState, str, str]


def run_race(url: str, prefix: str, kind: str, attempts: int, processes: int = 2) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results: multiprocessing.Queue[list[str]] = ctx.Queue()
    procs = [
        ctx.Process(target=workers.race, args=(url, prefix, kind, attempts, barrier, results))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    accepted = [item for _ in procs for item in results.get(timeout=60)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return accepted


def test_processes_race_on_one_nonce(redis_state: RedisFixture) -> None:
    _, url, prefix = redis_state
    assert len(run_race(url, prefix, "nonce", 200)) == 1


def test_processes_share_one_rate_counter(redis_state: RedisFixture) -> None:
    _, url, prefix = redis_state
    assert len(run_race(url, prefix, "rate", 150)) == 100


def test_processes_never_accept_a_call_id_twice(redis_state: RedisFixture) -> None:
    _, url, prefix = redis_state
    accepted = run_race(url, prefix, "call_id", 200)
    assert accepted
    assert max(Counter(accepted).values()) == 1
    assert "199" in accepted  # the greatest value is accepted by whoever sends it first


async def test_keys_of_one_call_share_the_app_hash_tag(redis_state: RedisFixture) -> None:
    state, url, prefix = redis_state
    rules = (RateLimitRule("app", 10, 60), RateLimitRule("user:7", 5, 60))
    check = CallCheck(app="ak_tag", nonce="nn", call_id_key="tok", call_id="12", limits=rules)
    assert (await state.check_call(check)).outcome is Outcome.OK
    client = Redis.from_url(url)
    try:
        keys = sorted([key async for key in client.scan_iter(match=f"{prefix}:*")])
        assert keys == sorted(
            f"{prefix}:{{ak_tag}}:{suffix}".encode()
            for suffix in ("n:nn", "c:tok", "r:app", "r:user:7")
        )
        assert len({key_slot(key) for key in keys}) == 1
        assert key_slot(keys[0]) == key_slot(b"ak_tag")
        for key in keys:
            assert await client.pttl(key) > 0  # everything expires
        assert await client.get(f"{prefix}:{{ak_tag}}:c:tok") == b"12"
    finally:
        await client.aclose()


async def test_script_reloaded_when_server_forgot_it(
    redis_state: RedisFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NOSCRIPT (a restarted or flushed server): the script is loaded again."""
    _, url, prefix = redis_state
    import hashlib
    import uuid

    script = redis_backend.CHECK_CALL_SCRIPT + f"\n-- {uuid.uuid4().hex}\n".encode()
    monkeypatch.setattr(redis_backend, "CHECK_CALL_SCRIPT", script)
    monkeypatch.setattr(redis_backend, "_CHECK_CALL_SHA", hashlib.sha1(script).hexdigest())
    state = RedisSharedState(url, prefix)
    try:
        assert await state.remember_nonce("ak_reload", "n", 60)
        assert not await state.remember_nonce("ak_reload", "n", 60)
    finally:
        await state.close()


async def test_ping_fails_when_redis_is_unreachable() -> None:
    state = RedisSharedState("redis://127.0.0.1:1/0", "op")
    try:
        with pytest.raises(RedisConnectionError):
            await state.ping()
    finally:
        await state.close()
