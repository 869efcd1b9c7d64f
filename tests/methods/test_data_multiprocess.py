"""Atomic counters across server processes (PROTOCOL §4 "data"):
``openplatform serve --workers 2`` on a SQLite file and on PostgreSQL (Redis
shared state), 50 parallel ``data.incHashValue`` calls over real HTTP
connections add exactly 50, each call answering a distinct new value."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from redis import Redis

from openplatform.gateway.signature import sign
from tests.conftest import TEST_SECRET_KEY, run_in_thread
from tests.gateway.test_multiprocess import OPENPLATFORM, _admin_sql, _children, _cli, _free_port
from tests.services import PG_HOST, PG_PORT

pytestmark = pytest.mark.redis

REDIS_DB = 12  # apart from the other tests' keys (db 0) and test_multiprocess' (db 13)
COUNTER = {"obj_type": "page", "key": "/index.html", "prop_name": "views"}
_distinct = itertools.count()


@dataclass(frozen=True)
class Server:
    base_url: str
    api_key: str
    secret: str


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"data-multiprocess-{request.param}")
    pg_name = None
    if request.param == "sqlite":
        database_url = f"sqlite:///{data_dir / 'openplatform.db'}"
    else:
        request.getfixturevalue("postgres_url")  # skips (or fails) without PostgreSQL
        pg_name = f"openplatform_data_mp_{uuid.uuid4().hex[:12]}"
        run_in_thread(_admin_sql(f'CREATE DATABASE "{pg_name}"'))
        database_url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{pg_name}"
    cache_url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    env = {
        **os.environ,
        "OPENPLATFORM_DATABASE_URL": database_url,
        "OPENPLATFORM_CACHE_URL": cache_url,
        "OPENPLATFORM_DATA_DIR": str(data_dir),
        "OPENPLATFORM_SECRET_KEY": TEST_SECRET_KEY,
    }
    env.pop("OPENPLATFORM_ISSUER", None)
    process = None
    try:
        subprocess.run([OPENPLATFORM, "db", "upgrade"], env=env, check=True, timeout=120)
        app = _cli(env, "apps", "create", "--name", "counters")
        # a fresh database numbers its apps from 1 again: forget earlier runs' state
        redis = Redis.from_url(cache_url)
        for key in redis.scan_iter(match=f"op:{{{app['app_id']}}}:*"):
            redis.delete(key)
        redis.close()
        port = _free_port()
        log = (data_dir / "server.log").open("w")
        process = subprocess.Popen(
            [OPENPLATFORM, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (data_dir / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in time"
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert len(_children(process.pid)) >= 2, "serve --workers 2 runs two worker processes"
        yield Server(base_url, str(app["api_key"]), str(app["secret"]))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if pg_name is not None:
            run_in_thread(_admin_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


def signed(server: Server, method: str, params: dict[str, str]) -> dict[str, str]:
    """``params`` signed for ``method`` (no call_id: parallel calls arrive in
    any order; a parameter of their own keeps them distinct)."""
    full = {
        "api_key": server.api_key,
        "timestamp": str(int(time.time())),
        "n": str(next(_distinct)),
        **params,
    }
    full["sig"] = sign([*full.items(), ("method", method)], server.secret)
    return full


async def call(
    server: Server, method: str, params: dict[str, str], client: httpx.AsyncClient | None = None
) -> httpx.Response:
    if client is not None:
        return await client.post(f"/rest/2.0/{method}", data=signed(server, method, params))
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as own:
        return await call(server, method, params, own)


async def test_50_parallel_increments_in_two_processes_add_exactly_50(server: Server) -> None:
    for method, params in (
        ("data.createObjectType", {"name": "page"}),
        ("data.defineObjectProperty", {"obj_type": "page", "prop_name": "views", "prop_type": "1"}),
    ):
        response = await call(server, method, params)
        assert response.json() == {"result": True}, response.text

    # each call on a connection of its own, so that both workers take part
    clients = [httpx.AsyncClient(base_url=server.base_url, timeout=60) for _ in range(50)]
    try:
        responses = await asyncio.gather(
            *(call(server, "data.incHashValue", COUNTER, client) for client in clients)
        )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert sorted(r.json()["value"] for r in responses) == list(range(1, 51))
    final = await call(server, "data.getHashValue", COUNTER)
    assert final.json() == {"value": 50}
