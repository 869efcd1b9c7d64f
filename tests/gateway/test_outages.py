"""A database or shared cache that is down answers code 2 (HTTP 503 with
Retry-After), never code 1 or a hang (PROTOCOL §1: 2 → 503 + Retry-After)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
from starlette.applications import Starlette

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from openplatform.config import Settings
from openplatform.errors import Code
from openplatform.errors.internal import PLAIN_SENTENCES
from openplatform.gateway import gateway_routes
from openplatform.services import Services
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from tests.conftest import TEST_SECRET_KEY
from tests.gateway.client import ApiClient
from tests.gateway.world import World

# Nothing listens on port 1 of the loopback address.
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/none"
DEAD_REDIS = "redis://127.0.0.1:1/0?socket_timeout=2"


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error_code"] == 2
    assert body["error_msg"] == "Service temporarily unavailable"
    request_id = response.headers["X-Request-Id"]
    sentence = PLAIN_SENTENCES[Code.SERVICE_UNAVAILABLE]
    assert body["error_detail"] == f"{sentence} (request id {request_id})"
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Error-Code"] == "2"


async def test_database_down_is_code_2(tmp_path: Path) -> None:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    database = Database(DEAD_POSTGRES, SecretBox("k"))
    services = Services(settings, database, MemorySharedState(prefix="t"), "http://t")
    transport = httpx.ASGITransport(app=Starlette(routes=gateway_routes(services)))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = ApiClient(http, api_key="ak_whatever", secret="s")
            response = await client.call("users.getLoggedInUser")
    finally:
        await database.close()
    assert_unavailable(response)


async def test_cache_down_is_code_2(world: World) -> None:
    dead = RedisSharedState(DEAD_REDIS, prefix="t")
    services = Services(world.services.settings, world.services.database, dead, "http://t")
    transport = httpx.ASGITransport(app=Starlette(routes=gateway_routes(services)))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = ApiClient(http, api_key=world.app.api_key, secret=world.app.secret)
            response = await client.call(
                "users.getInfo",
                {
                    "uids": str(world.alice.uid),
                    "fields": "username",
                    "access_token": world.alice_basic.access_token,
                },
            )
    finally:
        await dead.close()
    assert_unavailable(response)


async def test_database_down_outside_the_gateway_is_code_2(tmp_path: Path) -> None:
    """OAuth and admin routes go through the application's last-resort handler."""
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    database = Database(DEAD_POSTGRES, SecretBox("k"))
    services = Services(settings, database, MemorySharedState(prefix="t"), "http://t")
    transport = httpx.ASGITransport(app=create_app(settings, services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            admin = await http.get("/admin/api/apps/1", headers={"Authorization": "Bearer x"})
            token = await http.post(
                "/oauth/2.0/token",
                data={"grant_type": "client_credentials"},
                auth=("ak_x", "secret"),
            )
    finally:
        await database.close()
    assert_unavailable(admin)
    assert_unavailable(token)


async def test_rate_limits_fail_open_serves_unsigned_calls_only(world: World) -> None:
    """``OPENPLATFORM_RATE_LIMITS_FAIL_OPEN`` with the shared cache down: a
    bearer call (no signature: rate limits are all it needs of the cache) is
    served, its token read afresh (a revoked one is refused at once); a
    signed call still answers 2, with or without ``call_id`` (its ``sig`` is
    a replay nonce). Off (the default), the bearer call answers 2 too."""
    dead = RedisSharedState(DEAD_REDIS, prefix="t")
    params = {"uids": str(world.alice.uid), "fields": "username"}
    token = world.alice_basic.access_token
    answers: dict[bool, list[httpx.Response]] = {}
    try:
        for fail_open in (False, True):
            settings = replace(world.services.settings, rate_limits_fail_open=fail_open)
            services = Services(settings, world.services.database, dead, "http://t")
            transport = httpx.ASGITransport(app=Starlette(routes=gateway_routes(services)))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                client = ApiClient(http, api_key=world.app.api_key, secret=world.app.secret)
                answers[fail_open] = [
                    await client.bearer("users.getInfo", token, params),
                    await client.call("users.getInfo", {**params, "access_token": token}),
                    await client.call(
                        "users.getInfo", {**params, "access_token": token}, call_id=False
                    ),
                ]
                if fail_open:  # another process revokes the token
                    other = Database(
                        world.services.settings.database_url, SecretBox(TEST_SECRET_KEY)
                    )
                    try:
                        await other.tokens.revoke_access_token(token, world.app.id)
                    finally:
                        await other.close()
                    answers[fail_open].append(await client.bearer("users.getInfo", token, params))
    finally:
        await dead.close()
    for response in answers[False]:
        assert_unavailable(response)
    served, signed, signed_without_call_id, revoked = answers[True]
    assert served.status_code == 200, served.text
    assert served.json() == [{"uid": world.alice.uid, "username": "alice"}]
    assert "X-RateLimit-Limit" not in served.headers  # nothing was counted
    assert_unavailable(signed)
    assert_unavailable(signed_without_call_id)
    assert revoked.headers["X-Error-Code"] == str(int(Code.INVALID_ACCESS_TOKEN)), revoked.text
