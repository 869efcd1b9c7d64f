"""Client CPU per ``EVALSHA`` of ``check_call.lua``: cluster-aware clients
against the hot path's own connection, on one real Redis Cluster.

The baseline is today's connection (``openplatform.cache.redis_connection``)
talking straight to the master that owns the app's slot. Against it, on the
same cluster and in the same run: redis-py's ``redis.asyncio.RedisCluster``,
coredis' ``RedisCluster`` and valkey-glide's ``GlideClusterClient`` (each
skipped when not installed), and ``openplatform``'s own cluster backend
(``redis+cluster://``). Every client runs the same script with the same keys
and arguments a signed call sends (nonce, call_id, two rate limits), one at a
time and 64 at a time. Prints µs of wall time and of this process's CPU (all
threads: glide's Rust runtime included) per call, and the ratio to the
baseline; the best of ``--rounds`` interleaved runs.

    .venv/bin/python bench/cluster_clients.py [--n 5000] [--rounds 3] [--url redis+cluster://…]

Without ``--url`` it starts a local 3-master cluster (``tests/redis_cluster.py``).
coredis and valkey-glide are not dependencies of the project; to include them:

    .venv/bin/pip install --target /tmp/cluster-bench-extras coredis valkey-glide
    PYTHONPATH=/tmp/cluster-bench-extras .venv/bin/python bench/cluster_clients.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from openplatform.cache import CallCheck, RateLimitRule, open_shared_state
from openplatform.cache.redis import _CHECK_CALL_SHA, CHECK_CALL_SCRIPT, RedisSharedState
from openplatform.cache.redis_connection import RedisAddress, SharedConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.redis_cluster import RedisCluster

RULES = (
    RateLimitRule("app", limit=10**9, window_s=3600),
    RateLimitRule("user:10001", limit=10**9, window_s=3600),
)
Op = Callable[[int], Awaitable[object]]


async def measure(n: int, concurrency: int, op: Op) -> tuple[float, float]:
    """(wall µs, CPU µs) per operation."""
    for i in range(min(n, 300)):  # warm up connections, slot maps, the script cache
        await op(-i - 1)
    wall, cpu = time.perf_counter(), time.process_time()

    async def lane(start: int) -> None:
        for i in range(start, n, concurrency):
            await op(i)

    await asyncio.gather(*(lane(start) for start in range(concurrency)))
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def nodes_of(url: str) -> list[tuple[str, int]]:
    hosts = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    return [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts.split(",")]


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


async def main(url: str | None, n: int, rounds: int) -> None:
    cluster = None
    if url is None:
        cluster = RedisCluster().start()
        url = cluster.url
    prefix = f"opbench-{uuid.uuid4().hex[:8]}"
    run = uuid.uuid4().hex
    layout = RedisSharedState("redis://127.0.0.1:1/0", prefix)  # builds KEYS/ARGV only

    def keys_args(i: int) -> tuple[list[str], list[str | int]]:
        check = CallCheck(
            app="ak_bench",
            nonce=f"{run}-{i}",
            call_id_key="token",
            call_id=str(10**12 + i + 1000),
            limits=RULES,
        )
        return layout.keys_and_args(check)

    nodes = nodes_of(url)
    ops: list[tuple[str, Op]] = []
    closers: list[Callable[[], Awaitable[object]]] = []

    # The baseline: today's connection, to the master of the app's slot.
    from redis.asyncio import RedisCluster as PyRedisCluster
    from redis.asyncio.cluster import ClusterNode

    probe = PyRedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes])
    await probe.initialize()
    first_key = keys_args(0)[0][0]
    master = probe.get_node_from_key(first_key)
    await probe.script_load(CHECK_CALL_SCRIPT)  # every master learns the script
    direct = SharedConnection(RedisAddress.from_url(f"redis://{master.host}:{master.port}/0"))

    async def own_connection(i: int) -> object:
        keys, args = keys_args(i)
        return await direct.execute("EVALSHA", _CHECK_CALL_SHA, len(keys), *keys, *args)

    ops.append(("own connection, one node (baseline)", own_connection))
    closers.append(direct.close)

    cluster_state = open_shared_state(url, prefix=prefix)

    async def own_cluster(i: int) -> object:
        return await cluster_state.check_call(
            CallCheck(
                app="ak_bench",
                nonce=f"{run}-c{i}",
                call_id_key="token-c",
                call_id=str(10**12 + i + 1000),
                limits=RULES,
            )
        )

    ops.append(("openplatform redis+cluster://", own_cluster))
    closers.append(cluster_state.close)

    async def redis_py(i: int) -> object:
        keys, args = keys_args(i)
        return await probe.evalsha(_CHECK_CALL_SHA, len(keys), *keys, *args)

    ops.append((f"redis-py {version('redis')} RedisCluster", redis_py))
    closers.append(probe.aclose)

    try:
        import coredis
    except ImportError:
        print("coredis not installed: skipped")
    else:
        core: Any = coredis.RedisCluster(startup_nodes=[{"host": h, "port": p} for h, p in nodes])
        await core.__aenter__()

        async def coredis_op(i: int) -> object:
            keys, args = keys_args(i)
            return await core.evalsha(_CHECK_CALL_SHA, keys=keys, args=args)

        ops.append((f"coredis {version('coredis')} RedisCluster", coredis_op))
        closers.append(lambda: core.__aexit__(None, None, None))

    try:
        from glide import (
            GlideClusterClient,
            GlideClusterClientConfiguration,
            NodeAddress,
        )
    except ImportError:
        print("valkey-glide not installed: skipped")
    else:
        glide = await GlideClusterClient.create(
            GlideClusterClientConfiguration([NodeAddress(h, p) for h, p in nodes])
        )

        async def glide_op(i: int) -> object:
            keys, args = keys_args(i)
            return await glide.custom_command(
                ["EVALSHA", _CHECK_CALL_SHA, str(len(keys)), *keys, *(str(a) for a in args)]
            )

        ops.append((f"valkey-glide {version('valkey-glide')}", glide_op))
        closers.append(glide.close)

    try:
        for concurrency in (1, 64):
            best: dict[str, tuple[float, float]] = {}
            for _ in range(rounds):
                for name, op in ops:
                    wall, cpu = await measure(n, concurrency, op)
                    old = best.get(name, (wall, cpu))
                    best[name] = (min(wall, old[0]), min(cpu, old[1]))
            base_wall, base_cpu = best[ops[0][0]]
            print(f"concurrency {concurrency} (best of {rounds} runs of {n} EVALSHA):")
            for name, _ in ops:
                wall, cpu = best[name]
                print(
                    f"  {name:<38} {wall:7.1f} µs wall {cpu:6.1f} µs CPU"
                    f"   ratio to baseline: wall {wall / base_wall:5.2f} CPU {cpu / base_cpu:5.2f}"
                )
    finally:
        for close in closers:
            await close()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", default=None, help="redis+cluster://host:port,… (default: start one)"
    )
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    cli = parser.parse_args()
    asyncio.run(main(cli.url, cli.n, cli.rounds))
