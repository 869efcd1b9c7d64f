"""What every route needs, built once per server process: settings, the
database, the shared fast state and the issuer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from openplatform.cache import SharedState, SharedStateUnavailable
from openplatform.config import Settings

if TYPE_CHECKING:
    from openplatform.storage.database import Database

__all__ = ["Services"]

log = logging.getLogger(__name__)

# How soon a change the shared state did not hear of is announced again
# (doubling up to the longest wait, for as long as it cannot be reached).
ANNOUNCE_RETRY_FIRST_S = 0.2
ANNOUNCE_RETRY_LONGEST_S = 2.0


@dataclass
class Services:
    settings: Settings
    database: Database
    shared_state: SharedState
    issuer: str
    # apps whose committed change the shared state has not heard of yet
    _unannounced: set[int] = field(default_factory=set, init=False, repr=False)
    _announcer: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.database.changes.subscribe(self._bump_generations)

    async def _bump_generations(self, app_ids: frozenset[int]) -> None:
        """An app's settings or credentials changed (and are committed): every
        process that holds them in memory learns it with its next call of the
        app (``SharedState.bump_generation``).

        When the shared state cannot be reached, the change is durable but
        unannounced: the caller still learns it (code 2), and the apps are
        announced again in the background until the shared state answers —
        so a process that kept its own link to the shared state (a partial
        outage) stops serving a revoked token or an old secret moments after
        this one gets through, not never. A shared state that lost its data
        (restarted empty) needs no announcement: every generation is new."""
        unreachable: SharedStateUnavailable | None = None
        for app_id in sorted(app_ids):
            try:
                await self.shared_state.bump_generation(str(app_id))
            except SharedStateUnavailable as exc:
                self._unannounced.add(app_id)
                unreachable = exc
        if unreachable is not None:
            if self._announcer is None or self._announcer.done():
                self._announcer = asyncio.get_running_loop().create_task(self._announce())
            raise unreachable

    async def _announce(self) -> None:
        wait_s = ANNOUNCE_RETRY_FIRST_S
        while self._unannounced:
            await asyncio.sleep(wait_s)
            for app_id in sorted(self._unannounced):
                try:
                    await self.shared_state.bump_generation(str(app_id))
                except SharedStateUnavailable:
                    wait_s = min(wait_s * 2, ANNOUNCE_RETRY_LONGEST_S)
                    break
                except Exception:  # never let the announcer die unseen
                    log.exception("announcing a change of app %s failed", app_id)
                    wait_s = ANNOUNCE_RETRY_LONGEST_S
                    break
                self._unannounced.discard(app_id)
                log.info("announced the change of app %s once the shared state answered", app_id)

    async def close(self) -> None:
        if self._announcer is not None:
            if self._unannounced:
                log.warning(
                    "stopping with changes of apps %s not announced to the shared state",
                    sorted(self._unannounced),
                )
            self._announcer.cancel()
        await self.shared_state.close()
        await self.database.close()
