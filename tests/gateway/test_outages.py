"""A database or shared cache that is down answers code 2 (HTTP 503 with
Retry-After), never code 1 or a hang (PROTOCOL §1: 2 → 503 + Retry-After)."""

from __future__ import annotations

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
