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

    async def close(self) -> None:
        await self.shared_state.close()
        await self.database.close()
