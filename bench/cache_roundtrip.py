"""Client cost of one ``check_call`` on Redis against one plain ``PING``.

Runs in the same process and run: ``PING`` through redis-py's ``Redis.ping``
(the baseline), ``PING`` through the multiplexed connection ``check_call``
uses, and ``check_call`` with what a signed call asks (nonce, call_id, two rate
limits) — one at a time (latency) and 64 at a time (a busy server). Prints µs
of wall time and of this process's CPU per operation, and the ratio to the
baseline.

    .venv/bin/python bench/cache_roundtrip.py [redis://127.0.0.1:6379/0] [--n 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from openplatform.cache import CallCheck, RateLimitRule
from openplatform.cache.redis import RedisSharedState

RULES = (
    RateLimitRule("app", limit=10**9, window_s=3600),
    RateLimitRule("user:10001", limit=10**9, window_s=3600),
)


async def measure(
    n: int, concurrency: int, op: Callable[[int], Awaitable[object]]
) -> tuple[float, float]:
    """(wall µs, CPU µs) per operation."""
    for i in range(min(n, 500)):  # warm up connections and the script cache
        await op(-i - 1)
    wall, cpu = time.perf_counter(), time.process_time()

    async def lane(start: int) -> None:
        for i in range(start, n, concurrency):
            await op(i)

    await asyncio.gather(*(lane(start) for start in range(concurrency)))
    return (
        (time.perf_counter() - wall) / n * 1e6,
        (time.process_time() - cpu) / n * 1e6,
    )


async def main(url: str, n: int, rounds: int) -> None:
    prefix = f"opbench-{uuid.uuid4().hex[:8]}"
    state = RedisSharedState(url, prefix)
    client = Redis.from_url(url)  # the baseline: redis-py's own client
    run = uuid.uuid4().hex

    async def ping(_: int) -> object:
        return await client.ping()

    async def hot_ping(_: int) -> object:
        await state.ping()  # PING on check_call's multiplexed connection
        return None

    async def check(i: int) -> object:
        return await state.check_call(
            CallCheck(
                app="ak_bench",
                nonce=f"{run}-{i}",
                call_id_key="token",
                call_id=str(10**12 + i + 1000),
                limits=RULES,
            )
        )

    try:
        ops = (
            ("Redis.ping (baseline)", ping),
            ("PING, check_call's connection", hot_ping),
            ("check_call", check),
        )
        for concurrency in (1, 64):
            # best of ``rounds`` interleaved runs: the least disturbed by other load
            best: dict[str, tuple[float, float]] = {}
            for _ in range(rounds):
                for name, op in ops:
                    wall, cpu = await measure(n, concurrency, op)
                    old = best.get(name, (wall, cpu))
                    best[name] = (min(wall, old[0]), min(cpu, old[1]))
            base_wall, base_cpu = best[ops[0][0]]
            print(f"concurrency {concurrency} (best of {rounds} runs of {n}):")
            for name, _ in ops:
                wall, cpu = best[name]
                print(
                    f"  {name:<30} {wall:6.1f} µs wall {cpu:6.1f} µs CPU"
                    f"   ratio to baseline: wall {wall / base_wall:4.2f} CPU {cpu / base_cpu:4.2f}"
                )
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
        await state.close()
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.n, args.rounds))
