"""What every route needs, built once per server process: settings, the
database, the shared fast state and the issuer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from openplatform.cache import SharedState
from openplatform.config import Settings

if TYPE_CHECKING:
    from openplatform.storage.database import Database

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    database: Database
    shared_state: SharedState
    issuer: str

    def __post_init__(self) -> None:
        self.database.changes.subscribe(self._bump_generations)

    async def _bump_generations(self, app_ids: frozenset[int]) -> None:
        """An app's settings or credentials changed (and are committed): every
        process that holds them in memory learns it with its next call of the
        app (``SharedState.bump_generation``)."""
        for app_id in sorted(app_ids):
            await self.shared_state.bump_generation(str(app_id))

    async def close(self) -> None:
        await self.shared_state.close()
        await self.database.close()
