"""Fixtures of the OAuth tests: the real application on a real database
(SQLite and PostgreSQL), an app, a user, and an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache import open_shared_state
from openplatform.config import Settings
from openplatform.services import Services
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.database import Database
from tests.conftest import TEST_SECRET_KEY

ISSUER = "http://testserver"
REDIRECT_URI = "https://client.example/cb"
USERNAME = "alice"
PASSWORD = "correct horse battery staple"


def make_settings(database_url: str, data_dir: Path, **env: str) -> Settings:
    """The test settings; ``env`` adds ``OPENPLATFORM_<name>`` variables."""
    return Settings.from_env(
        {
            "OPENPLATFORM_DATABASE_URL": database_url,
            "OPENPLATFORM_DATA_DIR": str(data_dir),
            "OPENPLATFORM_SECRET_KEY": TEST_SECRET_KEY,
            "OPENPLATFORM_ISSUER": ISSUER,
            **{f"OPENPLATFORM_{name}": value for name, value in env.items()},
        }
    )


@dataclass
class OAuthWorld:
    """Everything one test talks to."""

    services: Services
    http: httpx.AsyncClient
    app: AppRecord  # confidential, redirect REDIRECT_URI, scopes basic+email
    uid: int

    @property
    def db(self) -> Database:
        return self.services.database

    async def new_app(self, **settings: object) -> AppRecord:
        data: dict[str, object] = {
            "name": "Other app",
            "redirect_uris": [REDIRECT_URI],
            "scopes": ["basic", "email"],
        }
        data.update(settings)
        return await self.db.apps.create(AppSettings.from_mapping(data))


def make_services(settings: Settings, issuer: str = ISSUER) -> Services:
    from openplatform.storage.crypto import SecretBox

    return Services(
        settings=settings,
        database=Database(settings.database_url, SecretBox(TEST_SECRET_KEY)),
        shared_state=open_shared_state("memory://"),
        issuer=issuer,
    )


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[OAuthWorld]:
    settings = make_settings(database_url, tmp_path)
    services = make_services(settings)
    app = create_app(settings, services)
    transport = httpx.ASGITransport(app=app)
    try:
        record = await services.database.apps.create(
            AppSettings.from_mapping(
                {
                    "name": "Photo Printer",
                    "description": "Prints your photos",
                    "redirect_uris": [REDIRECT_URI],
                    "scopes": ["basic", "email"],
                }
            )
        )
        user = await services.database.users.create(USERNAME, PASSWORD, email="a@example.com")
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            yield OAuthWorld(services, http, record, user.uid)
    finally:
        await services.close()


@pytest.fixture
async def second_instance(
    world: OAuthWorld, database_url: str, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """Another application instance on the same database, with its own
    connection pool and its own memory of apps and tokens (another server
    process, as far as the database sees), sharing the first one's shared
    state (as processes share Redis)."""
    from openplatform.storage.crypto import SecretBox

    settings = make_settings(database_url, tmp_path / "second")
    services = Services(
        settings=settings,
        database=Database(settings.database_url, SecretBox(TEST_SECRET_KEY)),
        shared_state=world.services.shared_state,
        issuer=ISSUER,
    )
    transport = httpx.ASGITransport(app=create_app(settings, services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            yield http
    finally:
        await services.database.close()
