"""A change committed while the shared state cannot be reached is announced
once it can (Services): the caller learns of the outage (code 2), and other
processes — which may still reach the shared state — stop using what they
hold of the app moments later instead of never."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openplatform.cache import CallCheck, SharedStateUnavailable
from openplatform.cache.memory import MemorySharedState
from openplatform.config import Settings
from openplatform.services import Services
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database


class Unreachable(MemorySharedState):
    """The shared state as one process sees it: unreachable while ``down``,
    the very same data as everyone else's otherwise."""

    def __init__(self, shared: MemorySharedState) -> None:
        super().__init__()
        self.shared = shared
        self.down = True
        self.attempts = 0

    async def bump_generation(self, app: str) -> None:
        self.attempts += 1
        if self.down:
            raise SharedStateUnavailable("the shared state cannot be reached")
        await self.shared.bump_generation(app)


async def _generation(state: MemorySharedState, app_id: int) -> int:
    verdict = await state.check_call(CallCheck(app=str(app_id)))
    return verdict.generation


async def test_an_unannounced_change_is_announced_once_the_state_answers(
    database: Database, tmp_path: Path
) -> None:
    shared = MemorySharedState()
    seen_by_this_process = Unreachable(shared)
    settings = Settings(data_dir=tmp_path, database_url="", cache_url="memory://", issuer=None)
    services = Services(settings, database, seen_by_this_process, "http://testserver")
    try:
        app = await database.apps.create(AppSettings(name="before"))
        before = await _generation(shared, app.id)  # what other processes go by

        with pytest.raises(SharedStateUnavailable):
            await database.apps.update(app.id, {"name": "after"})
        stored = await database.apps.get(app.id)
        assert stored is not None and stored.name == "after"  # durable all the same
        await asyncio.sleep(0.5)  # a few retries while it is still unreachable
        assert seen_by_this_process.attempts >= 2
        assert await _generation(shared, app.id) == before

        seen_by_this_process.down = False
        for _ in range(100):  # the next retry gets through (at most 2 s apart)
            if await _generation(shared, app.id) != before:
                break
            await asyncio.sleep(0.1)
        assert await _generation(shared, app.id) == before + 1
        attempts = seen_by_this_process.attempts
        await asyncio.sleep(2.5)
        assert seen_by_this_process.attempts == attempts  # announced once, then quiet
    finally:
        await services.close()
