"""PlatformSettingsRepository and migration 0002 (``platform_settings``) on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.migrate import current_revision, head_revision, upgrade_async
from tests.conftest import TEST_SECRET_KEY
from tests.storage.test_migrate import (
    EXPECTED_TABLES,
    empty_database_url,
    schema_of,
    upgrade_keeps_a_row,
)

__all__ = ["empty_database_url"]


async def test_get_set_replace(database: Database) -> None:
    settings = database.platform_settings
    assert await settings.get("maintenance") is None
    await settings.set("maintenance", {"enabled": True, "methods": ["data.*"]})
    assert await settings.get("maintenance") == {"enabled": True, "methods": ["data.*"]}
    await settings.set("maintenance", {"enabled": False, "methods": []})
    await settings.set("other", {"n": 1, "nested": {"x": [1, 2]}})
    assert await settings.get("maintenance") == {"enabled": False, "methods": []}
    assert await settings.get("other") == {"n": 1, "nested": {"x": [1, 2]}}
    async with database.sessions.read() as session:
        count = await session.scalar(text("SELECT count(*) FROM platform_settings"))
    assert count == 2


async def test_concurrent_writers_of_a_new_key(database: Database) -> None:
    await asyncio.gather(*(database.platform_settings.set("k", {"writer": i}) for i in range(8)))
    value = await database.platform_settings.get("k")
    assert value is not None and value["writer"] in range(8)


async def test_a_value_outlives_its_database_object(database_url: str) -> None:
    """What one process (or host) writes, a new ``Database`` reads back."""
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as first:
        await first.platform_settings.set("maintenance", {"enabled": True, "methods": []})
    async with Database(database_url, SecretBox(TEST_SECRET_KEY)) as second:
        assert await second.platform_settings.get("maintenance") == {
            "enabled": True,
            "methods": [],
        }


async def test_upgrade_from_0001_to_head(empty_database_url: str) -> None:
    """A database at 0001 with data in it gains ``platform_settings`` and keeps
    its rows; the schema then matches the models."""
    await upgrade_async(empty_database_url, "0001")
    assert await current_revision(empty_database_url) == "0001"
    tables, _ = await schema_of(empty_database_url)
    assert "platform_settings" not in tables
    assert await upgrade_keeps_a_row(empty_database_url)
    assert await current_revision(empty_database_url) == head_revision()
    tables, differences = await schema_of(empty_database_url)
    assert tables == EXPECTED_TABLES
    assert differences == []
    async with Database(empty_database_url, SecretBox(TEST_SECRET_KEY)) as db:
        await db.platform_settings.set("maintenance", {"enabled": False, "methods": []})
        assert await db.platform_settings.get("maintenance") == {"enabled": False, "methods": []}
