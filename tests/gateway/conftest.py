"""Gateway fixtures: a running app (ASGI, in-process) over SQLite or
PostgreSQL and over memory or Redis shared state, with an app, users and
tokens to call it with."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from openplatform.cache import SharedState
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from openplatform.config import Settings
from openplatform.gateway import gateway_routes, invalidate_app
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodCall, MethodRegistry, MethodSpec
from openplatform.services import Services
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.database import Database
from openplatform.storage.tokens import IssuedTokens
from openplatform.storage.users import UserRecord
from tests.gateway.client import ApiClient


async def _boom(call: MethodCall) -> object:
    raise RuntimeError("test.raise was called")


TEST_METHODS = (MethodSpec(name="test.raise", handler=_boom, description="Raises (tests code 1)."),)


def test_registry() -> MethodRegistry:
    registry = default_registry()
    for spec in TEST_METHODS:
        registry.register(spec)
    return registry


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def shared_state(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    prefix = f"opgw-{uuid.uuid4().hex[:12]}"
    state: SharedState
    if request.param == "memory":
        state = MemorySharedState(prefix=prefix)
    else:
        url: str = request.getfixturevalue("redis_url")
        state = RedisSharedState(url, prefix=prefix)
    try:
        yield state
    finally:
        await state.close()


@dataclass
class World:
    """A running gateway and what tests call it with."""

    services: Services
    client: ApiClient
    app: AppRecord
    alice: UserRecord  # public profile, email and mobile set
    bob: UserRecord  # private profile
    alice_basic: IssuedTokens  # scope "basic"
    alice_full: IssuedTokens  # scope "basic email mobile"

    async def configure(self, **settings: object) -> AppRecord:
        """Change the app's settings (as the admin API would) and drop it from
        the in-process cache."""
        self.app = await self.services.database.apps.update(self.app.id, settings)
        invalidate_app(self.services, self.app.id)
        self.client.secret = self.app.secret
        return self.app

    async def issue(self, user: UserRecord, scope: str, ttl_s: int = 3600) -> IssuedTokens:
        db = self.services.database
        grant = await db.tokens.create_grant(self.app.id, user.uid, scope, "authorization_code")
        await db.consents.grant(user.uid, self.app.id, scope)
        return await db.tokens.issue(grant, self.app.id, user.uid, scope, ttl_s, 86400, True)


@pytest.fixture
async def world(
    database: Database, shared_state: SharedState, tmp_path: Path
) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database.engine.url.render_as_string(hide_password=False),
        cache_url="memory://",
        issuer="http://testserver",
    )
    services = Services(
        settings=settings, database=database, shared_state=shared_state, issuer="http://testserver"
    )
    starlette = Starlette(routes=gateway_routes(services, test_registry()))
    app = await database.apps.create(
        AppSettings(name="Gateway test app", scopes=("basic", "email", "mobile"))
    )
    alice = await database.users.create(
        "alice",
        "pw-alice",
        email="alice@example.com",
        mobile="+8613800000000",
        display_name="Alice",
    )
    bob = await database.users.create("bob", "pw-bob", private=True, display_name="Bob")
    transport = httpx.ASGITransport(app=starlette, client=("192.0.2.10", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        world = World(
            services=services,
            client=ApiClient(http, api_key=app.api_key, secret=app.secret),
            app=app,
            alice=alice,
            bob=bob,
            alice_basic=IssuedTokens.__new__(IssuedTokens),
            alice_full=IssuedTokens.__new__(IssuedTokens),
        )
        world.alice_basic = await world.issue(alice, "basic")
        world.alice_full = await world.issue(alice, "basic email mobile")
        yield world
