"""Exactness across server processes (PROTOCOL §2, §3.3, §4 "data"): ONE
``openplatform serve --workers 2`` per backend — PostgreSQL with one Redis,
and PostgreSQL with a real Redis Cluster — driven over real HTTP, each
request of a parallel burst on a connection of its own so that both workers
take part (the 100 limited calls and the 50 increments check that they did):

* 20 copies of one signed request: exactly one succeeds, 19 are replays (107);
* a limit of 30 and 100 calls: exactly 30 succeed, 70 are limited (4);
* 16 parallel refreshes of one refresh token: exactly one succeeds (10002);
* 50 parallel ``data.incHashValue``: exactly +50 (also on a SQLite file);
* parallel writes at a storage quota's edge: exactly as many as fit (802);
* parallel calls racing on call_id: no value accepted twice;
* 10 parallel exchanges of one authorization code: exactly one succeeds;
* app changes, maintenance, revocations and secret rotations reach every
  worker at once.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openplatform.oauth.rfc7636 import s256_challenge
from tests.conftest import TEST_SECRET_KEY, run_in_thread
from tests.oauth.browser import find_form, query_of
from tests.reliability.platform import (
    App,
    admin_connect,
    call,
    children,
    create_database,
    drop_database,
    seed,
    server_env,
    signed,
)
from tests.server_process import serve_process
from tests.throwaway_services import throwaway_redis

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

METHOD = "application.getPublicInfo"
REDIRECT_URI = "https://client.example/cb"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"
COUNTER = {"obj_type": "page", "key": "/index.html", "prop_name": "views"}


@dataclass(frozen=True)
class Platform:
    base_url: str
    database: str  # the PostgreSQL database's name ("" on SQLite)
    admin_token: str
    main: App  # signed calls, OAuth (redirect REDIRECT_URI, scopes basic email)
    limited: App  # 30 calls per hour
    store: App  # the data store


APPS: dict[str, dict[str, object]] = {
    "main": {"redirect_uris": [REDIRECT_URI], "scopes": ["basic", "email"]},
    "limited": {"rate_limits": [{"methods": "*", "per": "app", "limit": 30, "window_s": 3600}]},
    "store": {},
}


@contextmanager
def platform_on(
    database_url: str, cache_url: str, workdir: Path, first_app_id: int | None
) -> Iterator[Platform]:
    """Seed ``database_url``, then run ``serve --workers 2`` on it."""
    seeded = run_in_thread(
        seed(database_url, TEST_SECRET_KEY, APPS, [(USERNAME, PASSWORD)], first_app_id)
    )
    env = server_env(database_url, cache_url, workdir, TEST_SECRET_KEY)
    with serve_process(env, workdir / "server.log", "--workers", "2") as base_url:
        yield Platform(
            base_url=base_url,
            database=database_url.rsplit("/", 1)[1]
            if database_url.startswith("postgresql")
            else "",
            admin_token=seeded.admin_token,
            main=seeded.apps["main"],
            limited=seeded.apps["limited"],
            store=seeded.apps["store"],
        )


@pytest.fixture(scope="module", params=["redis", "redis+cluster"])
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """PostgreSQL (a fresh database) and a fresh Redis, or the session's
    Redis Cluster (apps numbered from a random id, apart from other tests')."""
    request.getfixturevalue("postgres_url")  # skips (or fails) without PostgreSQL
    workdir = tmp_path_factory.mktemp(f"two-processes-{request.param}")
    name, database_url = create_database("openplatform_two")
    try:
        if request.param == "redis":
            with (
                throwaway_redis() as redis,
                platform_on(database_url, redis.url, workdir, None) as running,
            ):
                yield running
        else:
            cluster_url: str = request.getfixturevalue("redis_cluster_url")
            first = random.randrange(10**6, 2 * 10**9)
            with platform_on(database_url, cluster_url, workdir, first) as running:
                yield running
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def sqlite_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A SQLite file and a fresh Redis."""
    workdir = tmp_path_factory.mktemp("two-processes-sqlite")
    with (
        throwaway_redis() as redis,
        platform_on(
            f"sqlite:///{workdir / 'openplatform.db'}", redis.url, workdir, None
        ) as running,
    ):
        yield running


# --- helpers -----------------------------------------------------------------


async def in_parallel(
    platform: Platform,
    count: int,
    request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
) -> list[httpx.Response]:
    """``request(client, i)`` for i < count, all at once, each on a
    connection of its own (so both workers take part)."""
    clients = [httpx.AsyncClient(base_url=platform.base_url, timeout=60) for _ in range(count)]
    try:
        return list(await asyncio.gather(*(request(c, i) for i, c in enumerate(clients))))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


async def send_all(
    platform: Platform, method: str, bodies: list[dict[str, str]]
) -> list[httpx.Response]:
    return await in_parallel(
        platform, len(bodies), lambda c, i: c.post(f"/rest/2.0/{method}", data=bodies[i])
    )


def workers(responses: list[httpx.Response]) -> Counter[str]:
    """Answers per worker process: a request id starts with its process's
    random prefix (16 hex digits, openplatform.request_ids)."""
    return Counter(r.headers["X-Request-Id"][:16] for r in responses)


def codes(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(int(r.headers["X-Error-Code"]) for r in responses)


def oauth_codes(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(0 if r.status_code == 200 else int(r.json()["error_code"]) for r in responses)


async def one(platform: Platform, app: App, method: str, params: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        return await call(client, app, method, params)


async def admin(platform: Platform, method: str, path: str, body: object = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        response = await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {platform.admin_token}"}
        )
    assert response.status_code == 200, response.text
    return response


def basic(app: App) -> tuple[str, str]:
    return (app.api_key, app.secret)


async def authorization_code(platform: Platform, verifier: str) -> str:
    """Sign in and approve as a browser would: the code of the redirect."""
    params = {
        "response_type": "code",
        "client_id": platform.main.api_key,
        "redirect_uri": REDIRECT_URI,
        "scope": "basic email",
        "state": "s",
        "code_challenge": s256_challenge(verifier),
        "code_challenge_method": "S256",
    }
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as browser:
        response = await browser.get("/oauth/2.0/authorize", params=params)
        for _ in range(3):
            if response.status_code in (302, 303):
                return query_of(response.headers["location"])["code"]
            assert response.status_code == 200, response.text
            form = find_form(response.text)
            if ("action", "login") in form.fields:
                data = form.data(username=USERNAME, password=PASSWORD)
            else:
                data = form.data(action="approve")
            response = await browser.post(form.action, data=dict(data))
    raise AssertionError("the flow did not end in a redirect")


async def exchange(
    client: httpx.AsyncClient, platform: Platform, code: str, verifier: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    return await client.post("/oauth/2.0/token", data=data, auth=basic(platform.main))


async def tokens(platform: Platform) -> dict[str, str]:
    verifier = "v" * 50
    code = await authorization_code(platform, verifier)
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        response = await exchange(client, platform, code, verifier)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def bearer_calls(platform: Platform, token: str, count: int) -> Counter[int]:
    query = {"application_id": str(platform.main.app_id)}
    return codes(
        await in_parallel(
            platform,
            count,
            lambda c, i: c.post(
                f"/rest/2.0/{METHOD}", data=query, headers={"Authorization": f"Bearer {token}"}
            ),
        )
    )


async def used_bytes(platform: Platform, app: App) -> int:
    conn = await admin_connect(platform.database)
    try:
        used: int = await conn.fetchval(
            "SELECT used_bytes FROM data_store_usage WHERE app_id = $1", app.app_id
        )
    finally:
        await conn.close()
    return used


# --- the checks --------------------------------------------------------------


def test_serve_runs_two_worker_processes(platform: Platform) -> None:
    port = platform.base_url.rsplit(":", 1)[1]
    serving = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and port.encode() in argv:
            serving.append(int(cmdline.parent.name))
    assert serving, "no openplatform serve process found"
    assert max(len(children(pid)) for pid in serving) >= 2


async def test_20_copies_of_one_signed_request_succeed_once(platform: Platform) -> None:
    body = signed(
        platform.main, METHOD, {"application_id": str(platform.main.app_id), "call_id": "1"}
    )
    assert codes(await send_all(platform, METHOD, [body] * 20)) == Counter({0: 1, 107: 19})


async def test_limit_of_30_with_100_parallel_calls(platform: Platform) -> None:
    bodies = [
        signed(platform.limited, METHOD, {"application_id": str(platform.main.app_id)})
        for _ in range(100)
    ]
    responses = await send_all(platform, METHOD, bodies)
    assert codes(responses) == Counter({0: 30, 4: 70})
    assert len(workers(responses)) == 2  # split over both processes
    limited = [r for r in responses if r.status_code == 429]
    assert len(limited) == 70
    assert all(int(r.headers["Retry-After"]) >= 1 for r in limited)


async def test_16_parallel_refreshes_of_one_token_exactly_one_succeeds(platform: Platform) -> None:
    issued = await tokens(platform)
    data = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    responses = await in_parallel(
        platform,
        16,
        lambda c, i: c.post("/oauth/2.0/token", data=data, auth=basic(platform.main)),
    )
    assert oauth_codes(responses) == Counter({0: 1, 10002: 15}), [r.text for r in responses]
    # losers within refresh_reuse_grace_s are not punished: the winner's tokens work
    (winner,) = (r.json() for r in responses if r.status_code == 200)
    assert await bearer_calls(platform, winner["access_token"], 10) == Counter({0: 10})
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        again = await client.post(
            "/oauth/2.0/token",
            data={"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]},
            auth=basic(platform.main),
        )
    assert again.status_code == 200, again.text


async def test_10_parallel_exchanges_of_one_code_exactly_one_succeeds(platform: Platform) -> None:
    verifier = "w" * 50
    code = await authorization_code(platform, verifier)
    responses = await in_parallel(platform, 10, lambda c, i: exchange(c, platform, code, verifier))
    assert oauth_codes(responses) == Counter({0: 1, 10002: 9}), [r.text for r in responses]
    # every other use is a second use of the code: what it issued is revoked, in every worker
    (winner,) = (r.json() for r in responses if r.status_code == 200)
    assert await bearer_calls(platform, winner["access_token"], 10) == Counter({110: 10})


async def increments_add_exactly_50(platform: Platform) -> None:
    for method, params in (
        ("data.createObjectType", {"name": "page"}),
        ("data.defineObjectProperty", {"obj_type": "page", "prop_name": "views", "prop_type": "1"}),
    ):
        response = await one(platform, platform.store, method, params)
        assert response.json() == {"result": True}, response.text
    responses = await in_parallel(
        platform, 50, lambda c, i: call(c, platform.store, "data.incHashValue", COUNTER)
    )
    assert codes(responses) == Counter({0: 50}), [r.text for r in responses]
    assert len(workers(responses)) == 2  # both processes incremented
    assert sorted(r.json()["value"] for r in responses) == list(range(1, 51))
    final = await one(platform, platform.store, "data.getHashValue", COUNTER)
    assert final.json() == {"value": 50}


async def test_50_parallel_increments_add_exactly_50(platform: Platform) -> None:
    await increments_add_exactly_50(platform)


async def test_50_parallel_increments_on_a_sqlite_file(sqlite_platform: Platform) -> None:
    await increments_add_exactly_50(sqlite_platform)


async def test_parallel_writes_at_the_quota_edge_never_pass_it(platform: Platform) -> None:
    """30 parallel writes of equal size when 7 more fit (and half of an
    eighth): exactly 7 are stored, 23 refused with 802, the usage stays under
    the quota and every stored value is an acknowledged one."""
    store = platform.store
    for method, params in (
        ("data.createObjectType", {"name": "blob"}),
        ("data.defineObjectProperty", {"obj_type": "blob", "prop_name": "v", "prop_type": "2"}),
    ):
        response = await one(platform, store, method, params)
        assert response.json() == {"result": True}, response.text

    def write(i: int) -> dict[str, str]:
        return {"obj_type": "blob", "prop_name": "v", "key": f"k{i:03d}", "value": f"{i:03d}" * 20}

    before = await used_bytes(platform, store)
    response = await one(platform, store, "data.setHashValue", write(999))
    assert response.json() == {"result": True}, response.text
    used = await used_bytes(platform, store)
    size = used - before  # what one such write costs
    assert size > 0
    quota = used + 7 * size + size // 2
    await admin(
        platform, "PATCH", f"/admin/api/apps/{store.app_id}", {"storage_quota_bytes": quota}
    )

    responses = await in_parallel(
        platform, 30, lambda c, i: call(c, store, "data.setHashValue", write(i))
    )
    assert codes(responses) == Counter({0: 7, 802: 23}), [r.text for r in responses]
    after = await used_bytes(platform, store)
    assert after == used + 7 * size <= quota
    acknowledged = {i for i, r in enumerate(responses) if r.status_code == 200}
    for i in range(30):
        params = {k: v for k, v in write(i).items() if k != "value"}
        stored = (await one(platform, store, "data.getHashValue", params)).json()
        assert stored == {"value": write(i)["value"] if i in acknowledged else ""}


async def test_call_id_races_never_accept_a_value_twice(platform: Platform) -> None:
    base = 10**15
    bodies = [
        signed(
            platform.main,
            METHOD,
            {"application_id": str(platform.main.app_id), "call_id": str(base + v)},
        )
        for v in range(10)
        for _ in range(6)
    ]
    responses = await send_all(platform, METHOD, bodies)
    accepted = Counter(
        body["call_id"] for body, r in zip(bodies, responses, strict=True) if r.status_code == 200
    )
    assert accepted, "no call was accepted at all"
    assert max(accepted.values()) == 1
    assert set(codes(responses)) <= {0, 103}
    assert sum(accepted.values()) + codes(responses)[103] == 60


async def test_changes_reach_every_worker_at_once(platform: Platform) -> None:
    """An app setting changed through one worker, and the maintenance switch,
    apply to the very next call in every worker (no stale in-process cache)."""
    main = platform.main

    def bodies() -> list[dict[str, str]]:
        return [signed(main, METHOD, {"application_id": str(main.app_id)}) for _ in range(20)]

    assert codes(await send_all(platform, METHOD, bodies())) == Counter({0: 20})  # warm caches
    await admin(
        platform, "PATCH", f"/admin/api/apps/{main.app_id}", {"ip_allowlist": ["192.0.2.1"]}
    )
    assert codes(await send_all(platform, METHOD, bodies())) == Counter({5: 20})
    await admin(platform, "PATCH", f"/admin/api/apps/{main.app_id}", {"ip_allowlist": []})
    assert codes(await send_all(platform, METHOD, bodies())) == Counter({0: 20})
    await admin(platform, "PUT", "/admin/api/maintenance", {"enabled": True, "methods": [METHOD]})
    assert codes(await send_all(platform, METHOD, bodies())) == Counter({2: 20})
    await admin(platform, "PUT", "/admin/api/maintenance", {"enabled": False, "methods": []})
    assert codes(await send_all(platform, METHOD, bodies())) == Counter({0: 20})


async def test_revocations_and_rotated_secrets_reach_every_worker_at_once(
    platform: Platform,
) -> None:
    """Workers keep tokens and app secrets in memory: a token revoked, or a
    secret rotated, through one worker is refused by every worker on the very
    next call. (Last in this module: it rotates the secret the others sign
    with.)"""
    main = platform.main
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        issued = await client.post(
            "/oauth/2.0/token", data={"grant_type": "client_credentials"}, auth=basic(main)
        )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    assert await bearer_calls(platform, token, 20) == Counter({0: 20})  # both workers hold it
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=60) as client:
        revoked = await client.post("/oauth/2.0/revoke", data={"token": token}, auth=basic(main))
    assert revoked.status_code == 200
    assert await bearer_calls(platform, token, 20) == Counter({110: 20})

    def bodies(app: App) -> list[dict[str, str]]:
        return [signed(app, METHOD, {"application_id": str(main.app_id)}) for _ in range(20)]

    assert codes(await send_all(platform, METHOD, bodies(main))) == Counter({0: 20})
    rotated = await admin(platform, "POST", f"/admin/api/apps/{main.app_id}/rotate-secret")
    rotated_app = App(main.app_id, main.api_key, json.loads(rotated.text)["secret"])
    assert codes(await send_all(platform, METHOD, bodies(main))) == Counter({104: 20})
    assert codes(await send_all(platform, METHOD, bodies(rotated_app))) == Counter({0: 20})
