"""The in-process app cache: a few seconds, negative entries, local invalidation."""

from __future__ import annotations

from pathlib import Path

from openplatform.gateway.app_cache import AppCache
from openplatform.gateway.shared_file import replace_file
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_cached_for_ttl_then_reread(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="cached"))
    clock = Clock()
    cache = AppCache(database.apps, ttl_s=3.0, clock=clock)
    assert (await cache.by_api_key(app.api_key)) == app
    await database.apps.update(app.id, {"status": "suspended"})
    cached = await cache.by_api_key(app.api_key)
    assert cached is not None and cached.active
    clock.now += 3.5
    fresh = await cache.by_api_key(app.api_key)
    assert fresh is not None and fresh.status == "suspended"


async def test_invalidate_one_app_by_key_and_id(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="cached"))
    cache = AppCache(database.apps, clock=Clock())
    await cache.by_api_key(app.api_key)
    await cache.by_id(app.id)
    await database.apps.update(app.id, {"name": "renamed"})
    cache.invalidate(app.id)
    by_key = await cache.by_api_key(app.api_key)
    by_id = await cache.by_id(app.id)
    assert by_key is not None and by_key.name == "renamed"
    assert by_id is not None and by_id.name == "renamed"


async def test_unknown_keys_are_remembered_as_unknown(database: Database) -> None:
    clock = Clock()
    cache = AppCache(database.apps, clock=clock)
    assert await cache.by_api_key("ak_missing") is None
    assert await cache.by_id(424242) is None
    cache.invalidate()
    assert await cache.by_api_key("ak_missing") is None


async def test_a_change_in_another_process_empties_the_cache(
    database: Database, tmp_path: Path
) -> None:
    app = await database.apps.create(AppSettings(name="shared"))
    changes = tmp_path / "apps.changed"
    clock = Clock()
    mine = AppCache(database.apps, changes=changes, clock=clock)
    theirs = AppCache(database.apps, changes=changes, clock=clock)
    assert (await mine.by_id(app.id)) == app
    await database.apps.update(app.id, {"name": "renamed"})
    theirs.invalidate(app.id)
    replace_file(changes, b"another version")  # what invalidate_app does
    fresh = await mine.by_id(app.id)
    assert fresh is not None and fresh.name == "renamed"
