"""A live server for the SDK's tests: uvicorn on a free port over a fresh
SQLite database, with an app, two users and tokens issued to the first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.tokens import IssuedTokens
from openplatform.storage.users import UserRecord
from tests.conftest import TEST_SECRET_KEY, run_in_thread
from tests.gateway.world import issue
from tests.oauth.conftest import PASSWORD, REDIRECT_URI, USERNAME
from tests.oauth.live_server import serving

__all__ = ["LiveWorld", "live_world"]


@dataclass(frozen=True)
class LiveWorld:
    base_url: str
    database_url: str
    app: AppRecord  # confidential; scopes basic email mobile data; redirect REDIRECT_URI
    alice: UserRecord  # signs in with USERNAME/PASSWORD; public profile, email, mobile
    bob: UserRecord  # private profile
    alice_basic: IssuedTokens  # scope "basic"
    alice_full: IssuedTokens  # scope "basic email mobile"

    async def new_app(self, **settings: object) -> AppRecord:
        data: dict[str, object] = {
            "name": "SDK test app",
            "redirect_uris": [REDIRECT_URI],
            "scopes": ["basic", "email", "mobile", "data"],
            **settings,
        }
        async with Database(self.database_url, SecretBox(TEST_SECRET_KEY)) as db:
            return await db.apps.create(AppSettings.from_mapping(data))

    async def issue(self, user: UserRecord, scope: str, ttl_s: int = 3600) -> IssuedTokens:
        async with Database(self.database_url, SecretBox(TEST_SECRET_KEY)) as db:
            return await issue(db, self.app, user, scope, ttl_s)


async def _seed(database_url: str) -> tuple[AppRecord, UserRecord, UserRecord, list[IssuedTokens]]:
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as db:
        app = await db.apps.create(
            AppSettings.from_mapping(
                {
                    "name": "SDK test app",
                    "description": "Used by tests/client",
                    "redirect_uris": [REDIRECT_URI],
                    "scopes": ["basic", "email", "mobile", "data"],
                }
            )
        )
        alice = await db.users.create(
            USERNAME,
            PASSWORD,
            email="alice@example.com",
            mobile="+8613800000000",
            display_name="Alice",
        )
        bob = await db.users.create("bob", PASSWORD, private=True, display_name="Bob")
        tokens = [await issue(db, app, alice, scope) for scope in ("basic", "basic email mobile")]
        return app, alice, bob, tokens


@pytest.fixture(scope="module")
def live_world(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveWorld]:
    """One live server per test module (the tests that change an app make
    their own)."""
    directory = tmp_path_factory.mktemp("sdk-live")
    path = directory / "openplatform.db"
    shutil.copyfile(sqlite_template, path)
    database_url = f"sqlite:///{path}"
    app, alice, bob, tokens = run_in_thread(_seed(database_url))
    with serving(database_url, directory / "data") as base_url:
        yield LiveWorld(base_url, database_url, app, alice, bob, tokens[0], tokens[1])
