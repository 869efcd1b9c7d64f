"""Exactness across server processes (PROTOCOL §3.3): ``openplatform serve
--workers 2`` on PostgreSQL + Redis, driven over real HTTP connections.

* 20 copies of one signed request in parallel: exactly one succeeds, the
  others are replays (107);
* a limit of 30 and 100 parallel calls: exactly 30 succeed;
* parallel calls racing on call_id: no value is accepted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis

from openplatform.gateway.signature import sign
from tests.conftest import TEST_SECRET_KEY, run_in_thread
from tests.services import PG_HOST, PG_PORT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

OPENPLATFORM = str(Path(sys.executable).with_name("openplatform"))
REDIS_DB = 13  # keys of this test live apart from the other tests' (db 0)
METHOD = "application.getPublicInfo"


@dataclass(frozen=True)
class Cluster:
    base_url: str
    admin_token: str
    app_id: int
    api_key: str
    secret: str
    limited_api_key: str
    limited_secret: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _admin_sql(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [OPENPLATFORM, *args, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def cluster(
    postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    name = f"openplatform_mp_{uuid.uuid4().hex[:12]}"
    run_in_thread(_admin_sql(f'CREATE DATABASE "{name}"'))
    cache_url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    data_dir = tmp_path_factory.mktemp("multiprocess")
    env = {
        **os.environ,
        "OPENPLATFORM_DATABASE_URL": f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}",
        "OPENPLATFORM_CACHE_URL": cache_url,
        "OPENPLATFORM_DATA_DIR": str(data_dir),
        "OPENPLATFORM_SECRET_KEY": TEST_SECRET_KEY,
    }
    env.pop("OPENPLATFORM_ISSUER", None)
    server = None
    try:
        subprocess.run([OPENPLATFORM, "db", "upgrade"], env=env, check=True, timeout=120)
        app = _cli(env, "apps", "create", "--name", "multiprocess")
        limited = _cli(env, "apps", "create", "--name", "limited")
        admin = _cli(env, "admin-token", "create")
        # a fresh database numbers its apps from 1 again: forget earlier runs' state
        redis = Redis.from_url(cache_url)
        for app_id in (app["app_id"], limited["app_id"]):
            for key in redis.scan_iter(match=f"op:{{{app_id}}}:*"):
                redis.delete(key)
        redis.close()
        port = _free_port()
        log = (data_dir / "server.log").open("w")
        server = subprocess.Popen(
            [OPENPLATFORM, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (data_dir / "server.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in time"
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert len(_children(server.pid)) >= 2, "serve --workers 2 runs two worker processes"
        patched = httpx.patch(
            f"{base_url}/admin/api/apps/{limited['app_id']}",
            json={"rate_limits": [{"methods": "*", "per": "app", "limit": 30, "window_s": 3600}]},
            headers={"Authorization": f"Bearer {admin['token']}"},
        )
        assert patched.status_code == 200, patched.text
        yield Cluster(
            base_url=base_url,
            admin_token=str(admin["token"]),
            app_id=int(str(app["app_id"])),
            api_key=str(app["api_key"]),
            secret=str(app["secret"]),
            limited_api_key=str(limited["api_key"]),
            limited_secret=str(limited["secret"]),
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        run_in_thread(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def signed(api_key: str, secret: str, app_id: int, **extra: str) -> dict[str, str]:
    params = {
        "api_key": api_key,
        "timestamp": str(int(time.time())),
        "application_id": str(app_id),
        **extra,
    }
    params["sig"] = sign([*params.items(), ("method", METHOD)], secret)
    return params


async def send_all(cluster: Cluster, bodies: list[dict[str, str]]) -> list[httpx.Response]:
    """Every request at once, each on a connection of its own (so both
    workers take part)."""
    clients = [httpx.AsyncClient(base_url=cluster.base_url, timeout=30) for _ in range(len(bodies))]
    try:
        return await asyncio.gather(
            *(
                client.post(f"/rest/2.0/{METHOD}", data=body)
                for client, body in zip(clients, bodies, strict=True)
            )
        )
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


def codes(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(int(r.headers["X-Error-Code"]) for r in responses)


async def test_20_copies_of_one_signed_request_succeed_once(cluster: Cluster) -> None:
    body = signed(cluster.api_key, cluster.secret, cluster.app_id, call_id="1")
    responses = await send_all(cluster, [body] * 20)
    assert codes(responses) == Counter({0: 1, 107: 19})


async def test_limit_of_30_with_100_parallel_calls(cluster: Cluster) -> None:
    bodies = [
        signed(cluster.limited_api_key, cluster.limited_secret, cluster.app_id, n=str(i))
        for i in range(100)
    ]
    responses = await send_all(cluster, bodies)
    assert codes(responses) == Counter({0: 30, 4: 70})
    limited = [r for r in responses if r.status_code == 429]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)


async def test_call_id_races_never_accept_a_value_twice(cluster: Cluster) -> None:
    base = 10**15
    bodies = [
        signed(cluster.api_key, cluster.secret, cluster.app_id, call_id=str(base + v), n=str(c))
        for v in range(10)
        for c in range(6)
    ]
    responses = await send_all(cluster, bodies)
    accepted = Counter(
        body["call_id"]
        for body, response in zip(bodies, responses, strict=True)
        if response.status_code == 200
    )
    assert accepted, "no call was accepted at all"
    assert max(accepted.values()) == 1
    assert set(codes(responses)) <= {0, 103}


async def admin(cluster: Cluster, method: str, path: str, body: object) -> None:
    async with httpx.AsyncClient(base_url=cluster.base_url) as client:
        response = await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {cluster.admin_token}"}
        )
    assert response.status_code == 200, response.text


async def test_changes_reach_every_worker_at_once(cluster: Cluster) -> None:
    """An app setting changed through one worker, and the maintenance switch,
    apply to the very next call in every worker (no stale in-process cache)."""

    def bodies(tag: str) -> list[dict[str, str]]:
        return [
            signed(cluster.api_key, cluster.secret, cluster.app_id, n=f"{tag}{i}")
            for i in range(20)
        ]

    # warm both workers' app caches
    assert codes(await send_all(cluster, bodies("warm"))) == Counter({0: 20})
    await admin(
        cluster, "PATCH", f"/admin/api/apps/{cluster.app_id}", {"ip_allowlist": ["192.0.2.1"]}
    )
    assert codes(await send_all(cluster, bodies("ip"))) == Counter({5: 20})
    await admin(cluster, "PATCH", f"/admin/api/apps/{cluster.app_id}", {"ip_allowlist": []})
    assert codes(await send_all(cluster, bodies("open"))) == Counter({0: 20})
    await admin(cluster, "PUT", "/admin/api/maintenance", {"enabled": True, "methods": [METHOD]})
    assert codes(await send_all(cluster, bodies("down"))) == Counter({2: 20})
    await admin(cluster, "PUT", "/admin/api/maintenance", {"enabled": False, "methods": []})
    assert codes(await send_all(cluster, bodies("up"))) == Counter({0: 20})


async def test_revocations_and_rotated_secrets_reach_every_worker_at_once(
    cluster: Cluster,
) -> None:
    """Workers keep tokens and app secrets in memory (CredentialCache): a token
    revoked, or a secret rotated, through one worker is refused by every
    worker on the very next call. (Last in this module: it rotates the secret
    the other tests sign with.)"""
    async with httpx.AsyncClient(base_url=cluster.base_url) as client:
        issued = await client.post(
            "/oauth/2.0/token",
            data={"grant_type": "client_credentials"},
            auth=(cluster.api_key, cluster.secret),
        )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    query = {"application_id": str(cluster.app_id)}

    async def bearer_calls(count: int) -> Counter[int]:
        clients = [httpx.AsyncClient(base_url=cluster.base_url) for _ in range(count)]
        try:
            responses = await asyncio.gather(
                *(
                    c.post(
                        f"/rest/2.0/{METHOD}",
                        data=query,
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    for c in clients
                )
            )
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        return codes(list(responses))

    assert await bearer_calls(20) == Counter({0: 20})  # both workers hold the token now
    async with httpx.AsyncClient(base_url=cluster.base_url) as client:
        revoked = await client.post(
            "/oauth/2.0/revoke", data={"token": token}, auth=(cluster.api_key, cluster.secret)
        )
    assert revoked.status_code == 200
    assert await bearer_calls(20) == Counter({110: 20})

    old = [signed(cluster.api_key, cluster.secret, cluster.app_id, n=f"old{i}") for i in range(20)]
    assert codes(await send_all(cluster, old)) == Counter({0: 20})  # the secret is held too
    async with httpx.AsyncClient(base_url=cluster.base_url) as client:
        rotated = await client.post(
            f"/admin/api/apps/{cluster.app_id}/rotate-secret",
            headers={"Authorization": f"Bearer {cluster.admin_token}"},
        )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    stale = [signed(cluster.api_key, cluster.secret, cluster.app_id, n=f"s{i}") for i in range(20)]
    assert codes(await send_all(cluster, stale)) == Counter({104: 20})
    fresh = [signed(cluster.api_key, new_secret, cluster.app_id, n=f"f{i}") for i in range(20)]
    assert codes(await send_all(cluster, fresh)) == Counter({0: 20})
