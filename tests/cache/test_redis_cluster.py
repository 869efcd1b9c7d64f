"""Redis Cluster (``redis+cluster://``): slot routing, races between OS
processes, MOVED, and a master killed under load — calls answer 2 during the
failover and recover by themselves, and no replay is ever accepted twice.
(The whole shared-state suite runs on the cluster too: tests/cache/conftest.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from redis.crc import key_slot as redis_py_key_slot

from openplatform.cache import CallCheck, Outcome, SharedStateUnavailable
from openplatform.cache.redis import RedisSharedState
from openplatform.cache.redis_cluster import ClusterConnection, cluster_addresses, key_slot
from openplatform.config import Settings, SettingsError
from tests.cache.test_redis import run_race
from tests.redis_cluster import RedisCluster


@pytest.mark.parametrize(
    "key",
    [
        "op:{42}:n:abc",
        "{user1000}.following",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "no-tag",
        "ключ{☃}",
        "",
    ],
)
def test_key_slot_is_redis_cluster_hashing(key: str) -> None:
    assert key_slot(key) == redis_py_key_slot(key.encode())


def test_cluster_urls() -> None:
    seeds = cluster_addresses("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001?socket_timeout=2")
    assert [(a.host, a.port, a.password, a.read_timeout_s) for a in seeds] == [
        ("10.0.0.1", 7000, "pw", 2.0),
        ("10.0.0.2", 7001, "pw", 2.0),
    ]
    for bad in ("redis+cluster://", "redis+cluster://h:1/3", "redis+cluster://h:x"):
        with pytest.raises(SettingsError):
            Settings.from_env({"OPENPLATFORM_CACHE_URL": bad})
    assert Settings.from_env({"OPENPLATFORM_CACHE_URL": seeds_url()}).cache_url == seeds_url()


def seeds_url() -> str:
    return "redis+cluster://127.0.0.1:7000,127.0.0.1:7001"


def unique() -> str:
    return f"opcl-{uuid.uuid4().hex[:10]}"


def test_processes_race_on_one_nonce(redis_cluster_url: str) -> None:
    assert len(run_race(redis_cluster_url, unique(), "nonce", 200)) == 1


def test_processes_share_one_rate_counter(redis_cluster_url: str) -> None:
    assert len(run_race(redis_cluster_url, unique(), "rate", 150)) == 100


def test_processes_never_accept_a_call_id_twice(redis_cluster_url: str) -> None:
    accepted = run_race(redis_cluster_url, unique(), "call_id", 200)
    assert max(Counter(accepted).values()) == 1
    assert "199" in accepted


async def test_apps_spread_over_every_master(redis_cluster: RedisCluster) -> None:
    state = RedisSharedState(redis_cluster.url, unique())
    try:
        for app in range(30):
            assert await state.remember_nonce(str(app), "n", 60)
        connection = state._connection
        assert isinstance(connection, ClusterConnection)
        used = {connection._slots[key_slot(f"x:{{{app}}}:")] for app in range(30)}
        assert len(used) == 3  # every call went to the master of its app's slot
    finally:
        await state.close()


async def test_moved_is_followed(redis_cluster: RedisCluster) -> None:
    """A stale slot map (as after a resharding): the wrong master answers
    MOVED, the command is sent where it belongs, the map learns it."""
    state = RedisSharedState(redis_cluster.url, unique())
    try:
        await state.ping()
        connection = state._connection
        assert isinstance(connection, ClusterConnection)
        slot = key_slot("{ak_moved}")
        right = connection._slots[slot]
        wrong = next(m for m in connection._masters if m != right)
        connection._slots[slot] = wrong
        assert await state.remember_nonce("ak_moved", "n-1", 60)
        assert not await state.remember_nonce("ak_moved", "n-1", 60)
        assert connection._slots[slot] == right
    finally:
        await state.close()


async def test_master_killed_failover_timeline(
    redis_cluster: RedisCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kill the master of an app's slot under load (SIGKILL): calls answer 2
    (SharedStateUnavailable) while its replica takes over, then succeed again
    without anyone touching the client; every signed request accepted before
    the kill is replayed throughout, and none is ever accepted twice; the
    app's generation is the same after the failover as before."""
    app = f"ak-failover-{uuid.uuid4().hex[:6]}"
    prefix = unique()
    state = RedisSharedState(redis_cluster.url + "?socket_timeout=1", prefix)
    victim = redis_cluster.master_of(f"{{{app}}}")
    accepted = [f"before-{i}" for i in range(200)]
    try:
        for nonce in accepted:
            assert await state.remember_nonce(app, nonce, 600)
        generation = (await state.check_call(CallCheck(app=app))).generation
        # What a failover keeps is what the replica has (see the README): the
        # test needs every key of the app on the replica before the kill.
        replica = redis_cluster.wait_replicated(victim)
        base = f"{prefix}:{{{app}}}:"
        expected = {base + "g"} | {base + "n:" + nonce for nonce in accepted}
        held = set(redis_cluster.keys(replica, base + "*"))
        assert held == expected, (
            f"replica :{replica} of :{victim} holds {len(held)} of the app's "
            f"{len(expected)} keys: {redis_cluster.replication(replica)}"
        )
        timeline: list[tuple[float, str]] = []
        answers: Counter[str] = Counter()
        replays_accepted: list[str] = []
        started = time.monotonic()
        redis_cluster.kill(victim)
        killed_at = time.monotonic() - started
        fresh = 0
        recovered_at = None

        def report() -> str:
            steps = ", ".join(f"{at:.2f} s → {outcome}" for at, outcome in timeline)
            return (
                f"failover timeline: master :{victim} killed at {killed_at:.2f} s "
                f"(its replica :{replica} had all {len(expected)} keys of the app); {steps}; "
                + (
                    f"recovered after {recovered_at:.2f} s"
                    if recovered_at is not None
                    else "not recovered"
                )
                + f"; {answers['2']} calls answered 2, {answers['ok']} succeeded"
            )

        while time.monotonic() - started < 30:
            at = time.monotonic() - started
            try:
                ok = await state.remember_nonce(app, f"after-{fresh}", 600)
                assert ok, report()
                fresh += 1
                outcome = "ok"
                replay = accepted[fresh % len(accepted)]
                if await state.remember_nonce(app, replay, 600):
                    replays_accepted.append(replay)
            except SharedStateUnavailable:
                outcome = "2"
            answers[outcome] += 1
            if not timeline or timeline[-1][1] != outcome:
                timeline.append((at, outcome))
            if outcome == "ok" and recovered_at is None and len(timeline) > 1:
                recovered_at = at
            if recovered_at is not None and at - recovered_at > 1.0:
                break
            await asyncio.sleep(0.01)
        with capsys.disabled():
            print("\n" + report())
        assert timeline[0][1] == "2", report()  # the first calls after the kill answer 2
        assert recovered_at is not None, report()
        assert redis_cluster.master_of(f"{{{app}}}") == replica, report()
        # every replay of the 200 accepted before the kill is refused, during and after
        for nonce in accepted:
            verdict = await state.check_call(CallCheck(app=app, nonce=nonce))
            assert verdict.outcome is Outcome.REPLAYED, (nonce, report())
            assert verdict.generation == generation, report()
        assert replays_accepted == [], report()
    finally:
        await state.close()
        redis_cluster.start_node(victim)  # it rejoins as a replica
        redis_cluster.wait_ok()
