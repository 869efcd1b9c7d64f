"""Gateway fixtures (used by tests/gateway and tests/methods): a running app
(ASGI, in-process) over SQLite or PostgreSQL and over memory or Redis shared
state, with an app, users and tokens to call it with."""

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
from openplatform.gateway import gateway_routes
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodCall, MethodRegistry, MethodSpec
from openplatform.services import Services
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.models import User, utcnow
from openplatform.storage.tokens import IssuedTokens
from openplatform.storage.users import UserRecord
from tests.conftest import TEST_SECRET_KEY, fresh_database_url
from tests.gateway.client import ApiClient


async def _boom(call: MethodCall) -> object:
    raise RuntimeError("test.raise was called")


CLIENT_IP = "192.0.2.10"


async def _fine(call: MethodCall) -> object:
    return {"app_id": call.app.id}


TEST_METHODS = (
    MethodSpec(name="test.raise", handler=_boom, description="Raises (tests code 1)."),
    MethodSpec(
        name="test.unbatchable",
        handler=_fine,
        batchable=False,
        description="Answers at once; batch.run may not call it (tests 953).",
    ),
)


def registry_with_test_methods() -> MethodRegistry:
    registry = default_registry()
    for spec in TEST_METHODS:
        registry.register(spec)
    return registry


@dataclass(frozen=True)
class Backends:
    database: str  # "sqlite" | "postgres"
    shared_state: str  # "memory" | "redis"


# Each backend of each kind, without running every test four times: the
# embedded pair (SQLite + memory) and the production pair (PostgreSQL + Redis).
BACKENDS = [
    pytest.param(Backends("sqlite", "memory"), id="sqlite-memory"),
    pytest.param(
        Backends("postgres", "redis"),
        id="postgres-redis",
        marks=[pytest.mark.postgres, pytest.mark.redis],
    ),
]


@pytest.fixture(params=BACKENDS)
def backends(request: pytest.FixtureRequest) -> Backends:
    chosen: Backends = request.param
    return chosen


@pytest.fixture
def gateway_database_url(backends: Backends, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return fresh_database_url(backends.database, request, tmp_path)


@pytest.fixture
async def shared_state(
    backends: Backends, request: pytest.FixtureRequest
) -> AsyncIterator[SharedState]:
    prefix = f"opgw-{uuid.uuid4().hex[:12]}"
    state: SharedState
    if backends.shared_state == "memory":
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
    asgi: Starlette
    client: ApiClient
    app: AppRecord
    alice: UserRecord  # public profile, email and mobile set
    bob: UserRecord  # private profile
    alice_basic: IssuedTokens  # scope "basic"
    alice_full: IssuedTokens  # scope "basic email mobile"

    async def configure(self, **settings: object) -> AppRecord:
        """Change the app's settings (as the admin API would; every process
        hears of it)."""
        self.app = await self.services.database.apps.update(self.app.id, settings)
        self.client.secret = self.app.secret
        return self.app

    async def issue(self, user: UserRecord, scope: str, ttl_s: int = 3600) -> IssuedTokens:
        return await issue(self.services.database, self.app, user, scope, ttl_s)


async def add_user(db: Database, username: str, **profile: object) -> UserRecord:
    """A user, stored directly (no password hashing: these users never sign in)."""
    async with db.sessions.write() as session:
        row = User(username=username, password_hash="!", created_at=utcnow(), **profile)
        session.add(row)
        await session.flush()
        uid = row.id
    user = await db.users.get(uid)
    assert user is not None
    return user


async def issue(
    db: Database, app: AppRecord, user: UserRecord, scope: str, ttl_s: int = 3600
) -> IssuedTokens:
    """Tokens and a session key, as the authorization code grant would issue them."""
    grant = await db.tokens.create_grant(app.id, user.uid, scope, "authorization_code")
    await db.consents.grant(user.uid, app.id, scope)
    return await db.tokens.issue(grant, app.id, user.uid, scope, ttl_s, 86400, True)


@pytest.fixture
async def world(
    gateway_database_url: str, shared_state: SharedState, tmp_path: Path
) -> AsyncIterator[World]:
    database = Database(gateway_database_url, SecretBox(TEST_SECRET_KEY))
    try:
        async for world in _world(database, gateway_database_url, shared_state, tmp_path):
            yield world
    finally:
        await database.close()


async def _world(
    database: Database, database_url: str, shared_state: SharedState, tmp_path: Path
) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        cache_url="memory://",
        issuer="http://testserver",
    )
    services = Services(
        settings=settings, database=database, shared_state=shared_state, issuer="http://testserver"
    )
    starlette = Starlette(routes=gateway_routes(services, registry_with_test_methods()))
    app = await database.apps.create(
        AppSettings(name="Gateway test app", scopes=("basic", "email", "mobile"))
    )
    alice = await add_user(
        database,
        "alice",
        email="alice@example.com",
        mobile="+8613800000000",
        display_name="Alice",
    )
    bob = await add_user(database, "bob", profile_visibility="private", display_name="Bob")
    tokens = [await issue(database, app, alice, scope) for scope in ("basic", "basic email mobile")]
    transport = httpx.ASGITransport(app=starlette, client=(CLIENT_IP, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield World(
            services=services,
            asgi=starlette,
            client=ApiClient(http, api_key=app.api_key, secret=app.secret),
            app=app,
            alice=alice,
            bob=bob,
            alice_basic=tokens[0],
            alice_full=tokens[1],
        )
