"""Redis backend: real races between OS processes, key layout, script reload."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import uuid
from collections import Counter

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from openplatform.cache import CallCheck, Outcome, RateLimitRule, SharedStateUnavailable
from openplatform.cache import redis as redis_backend
from openplatform.cache.redis import RedisSharedState
from openplatform.cache.redis_connection import (
    RedisConnectionError,
    RedisTimeoutError,
    pack_command,
)
from tests.cache import workers
from tests.cache.conftest import delete_prefix
from tests.tcp_proxy import TcpProxy

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
            for suffix in ("g", "n:nn", "c:tok", "r:app", "r:user:7")
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


# -- the multiplexed connection of check_call --------------------------------


def nonce_check(i: int) -> CallCheck:
    return CallCheck(app="ak_mux", nonce=f"n{i}")


async def test_concurrent_calls_get_their_own_replies(redis_state: RedisFixture) -> None:
    state, _, _ = redis_state
    for i in range(0, 300, 2):
        assert (await state.check_call(nonce_check(i))).outcome is Outcome.OK
    verdicts = await asyncio.gather(*(state.check_call(nonce_check(i)) for i in range(300)))
    assert [v.outcome for v in verdicts] == [
        Outcome.REPLAYED if i % 2 == 0 else Outcome.OK for i in range(300)
    ]


async def test_cancelled_calls_do_not_shift_replies(redis_state: RedisFixture) -> None:
    state, _, _ = redis_state
    for i in range(0, 60, 2):
        assert (await state.check_call(nonce_check(i))).outcome is Outcome.OK
    tasks = [asyncio.create_task(state.check_call(nonce_check(i))) for i in range(60)]
    await asyncio.sleep(0)  # every task has written its command
    for i in range(0, 60, 3):
        tasks[i].cancel()
    for i, task in enumerate(tasks):
        if i % 3 == 0:
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            expected = Outcome.REPLAYED if i % 2 == 0 else Outcome.OK
            assert (await task).outcome is expected
    assert (await state.check_call(nonce_check(1000))).outcome is Outcome.OK
    assert (await state.check_call(nonce_check(1000))).outcome is Outcome.REPLAYED


async def test_calls_in_flight_fail_when_the_connection_drops(redis_url: str) -> None:
    """Calls waiting on a connection that breaks fail (code 2 upstream); the
    next calls connect again, and the failed ones wrote nothing."""
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    proxy = await TcpProxy(host, int(port)).start()
    prefix = f"optest-{uuid.uuid4().hex[:12]}"
    state = RedisSharedState(f"redis://127.0.0.1:{proxy.port}/0", prefix)
    try:
        assert (await state.check_call(nonce_check(1))).outcome is Outcome.OK
        proxy.stall()  # the commands below are written, never delivered
        calls = [asyncio.create_task(state.check_call(nonce_check(i))) for i in range(2, 52)]
        await asyncio.sleep(0.05)
        proxy.cut()
        failed = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(result, SharedStateUnavailable) for result in failed)
        assert all(isinstance(r.__cause__, RedisConnectionError) for r in failed)
        proxy.resume()
        batch = await asyncio.gather(*(state.check_call(nonce_check(i)) for i in range(1, 52)))
        assert [v.outcome for v in batch] == [Outcome.REPLAYED] + [Outcome.OK] * 50
    finally:
        await state.close()
        await proxy.close()
        await delete_prefix(redis_url, prefix)


async def test_calls_reconnect_after_the_server_closed_the_connection(redis_url: str) -> None:
    """``CLIENT KILL`` between calls: the next call notices and reconnects,
    with the client name of the URL (the handshake is ours: RESP2, then
    ``CLIENT SETNAME``), whatever redis-py's own handshake does."""
    name = f"optest-{uuid.uuid4().hex[:12]}"
    state = RedisSharedState(f"{redis_url}?client_name={name}", name)
    admin = Redis.from_url(redis_url)
    try:
        for round_ in range(3):
            assert (await state.check_call(nonce_check(round_))).outcome is Outcome.OK
            ids = [c["id"] for c in await admin.client_list() if c["name"] == name]
            assert len(ids) == 1
            await admin.client_kill_filter(_id=ids[0])
            await asyncio.sleep(0.05)
        verdicts = await asyncio.gather(*(state.check_call(nonce_check(i)) for i in range(5)))
        assert [v.outcome for v in verdicts] == [Outcome.REPLAYED] * 3 + [Outcome.OK] * 2
    finally:
        await state.close()
        await delete_prefix(redis_url, name)
        await admin.aclose()


async def test_close_fails_waiting_calls(redis_state: RedisFixture) -> None:
    _, url, prefix = redis_state
    state = RedisSharedState(url, prefix)
    for connected in (False, True):  # closed while connecting, then while waiting
        if connected:
            assert (await state.check_call(nonce_check(100))).outcome is Outcome.OK
        tasks = [asyncio.create_task(state.check_call(nonce_check(i))) for i in range(20)]
        await asyncio.sleep(0)
        await state.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(result, SharedStateUnavailable) for result in results)
    # calls begun after close() connect again (the next lifespan of an app)
    assert (await state.check_call(nonce_check(200))).outcome is Outcome.OK
    await state.close()


async def silent_server(answer_handshake: bool) -> tuple[asyncio.Server, int]:
    """A server on the loopback that never answers EVALSHA (a hung Redis)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if answer_handshake and b"EVALSHA" not in data:
                commands = data.count(b"\r\n*") + data.startswith(b"*")
                writer.write(b"+OK\r\n" * commands)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("answer_handshake", [False, True])
async def test_calls_time_out_when_redis_hangs(answer_handshake: bool) -> None:
    server, port = await silent_server(answer_handshake)
    state = RedisSharedState(f"redis://127.0.0.1:{port}/0?socket_timeout=0.3", "op")
    try:
        for _ in range(2):
            with pytest.raises(SharedStateUnavailable) as raised:
                await asyncio.wait_for(state.check_call(nonce_check(1)), 5)
            assert isinstance(raised.value.__cause__, RedisTimeoutError)
    finally:
        await state.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "args",
    [
        ("PING",),
        ("EVALSHA", "ab" * 20, 2, "op:{ak}:n:ключ-☃", "op:{ak}:r:app", 0, "", 0, 10, 360000),
        ("SET", "k", "", "PX", 10**15),
    ],
)
def test_pack_command_matches_redis_py(args: tuple[str | int, ...]) -> None:
    assert pack_command(args) == b"".join(Connection().pack_command(*args))


def test_one_state_used_from_several_event_loops(redis_url: str) -> None:
    """Closed at the end of each loop (an app's lifespan), a state serves the next
    loop with a new connection (an app run by several test clients)."""
    prefix = f"optest-{uuid.uuid4().hex[:12]}"
    state = RedisSharedState(redis_url, prefix)

    async def remember(nonce: str) -> bool:
        try:
            return await state.remember_nonce("ak_loops", nonce, 60)
        finally:
            await state.close()

    try:
        assert asyncio.run(remember("n"))
        assert not asyncio.run(remember("n"))
        assert asyncio.run(remember("m"))
    finally:
        asyncio.run(delete_prefix(redis_url, prefix))


async def test_a_lost_generation_starts_anew_never_where_it_was(redis_state: RedisFixture) -> None:
    """A Redis that lost its data (restarted without persistence) must not
    report a generation a process remembers from before."""
    state, url, prefix = redis_state
    before = (await state.check_call(CallCheck(app="ak_gen"))).generation
    await state.bump_generation("ak_gen")
    client = Redis.from_url(url)
    try:
        await client.delete(f"{prefix}:{{ak_gen}}:g")
        after = (await state.check_call(CallCheck(app="ak_gen"))).generation
        assert after not in (before, before + 1, 0, 1)
        assert await client.pttl(f"{prefix}:{{ak_gen}}:g") > 86400 * 1000  # kept, not forever
    finally:
        await client.aclose()
