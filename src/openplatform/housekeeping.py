"""Housekeeping (issue 12): expired and revoked credentials and old call
statistics deleted in bounded batches (:mod:`openplatform.storage.prune`),
by one process at a time across every host.

Every server process runs :meth:`Housekeeping.start`'s task: every
``OPENPLATFORM_PRUNE_INTERVAL_S`` seconds (600; 0 turns it off) it tries to
take the lease ``prune`` in the shared state (:meth:`SharedState.acquire_lease`);
the one process that gets it makes a pass, the others skip this round. The
lease lasts :data:`LEASE_TTL_S` and is renewed after every batch, so it
outlives its holder by at most that much if the holder dies, and a pass
whose renewal fails (it took too long and another process took over) stops
at once. ``openplatform db prune`` makes one pass under the same lease.

With ``memory://`` shared state (one server process) the lease is that
process's own: ``openplatform db prune`` then runs beside the server's task
unguarded — harmless, as both only delete what is due, but twice the work.

A failed pass (database or shared state unavailable, anything else) is
logged and the task goes on; it never takes the server down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from openplatform.cache import SharedState, SharedStateUnavailable
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.prune import Pruner, PruneReport

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.database import Database

__all__ = ["LEASE", "LEASE_TTL_S", "Housekeeping"]

log = logging.getLogger(__name__)

LEASE = "prune"
# Far longer than one batch (a short transaction), renewed after each.
LEASE_TTL_S = 60.0


class Housekeeping:
    """Prune passes under the lease: on demand, and every ``interval_s``."""

    def __init__(
        self,
        database: Database,
        shared_state: SharedState,
        *,
        interval_s: float = 600.0,
        batch_rows: int = 1000,
        margin: timedelta = timedelta(days=7),
        stats_retention_days: int = 0,
    ) -> None:
        self._database = database
        self._shared_state = shared_state
        self._interval_s = interval_s
        self._pruner = Pruner(
            database.sessions,
            batch_rows=batch_rows,
            margin=margin,
            stats_retention_days=stats_retention_days,
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_services(cls, services: Services, *, batch_rows: int | None = None) -> Housekeeping:
        """With the settings of ``services`` (``batch_rows`` overrides theirs)."""
        settings = services.settings
        return cls(
            services.database,
            services.shared_state,
            interval_s=settings.prune_interval_s,
            batch_rows=batch_rows or settings.prune_batch_rows,
            margin=timedelta(days=settings.prune_margin_days),
            stats_retention_days=settings.stats_retention_days,
        )

    async def prune_once(self) -> PruneReport | None:
        """One whole pass under the lease; None when another process holds it.
        Raises ``DatabaseUnavailable`` or ``SharedStateUnavailable`` in an
        outage (the batches committed before it stay deleted)."""
        owner = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(8)}"
        state = self._shared_state
        if not await state.acquire_lease(LEASE, owner, LEASE_TTL_S):
            return None

        async def renew(kind: str, deleted: int) -> bool:
            if self._stopping.is_set():
                return False
            if await state.renew_lease(LEASE, owner, LEASE_TTL_S):
                return True
            log.warning("housekeeping: lost the %r lease after deleting %s", LEASE, kind)
            return False

        try:
            return await self._pruner.prune(renew)
        finally:
            try:
                await state.release_lease(LEASE, owner)
            except SharedStateUnavailable as exc:
                log.warning("housekeeping: lease not released, it lapses by itself: %s", exc)

    def start(self) -> None:
        """Prune every ``interval_s`` seconds in a background task (none when 0)."""
        if self._interval_s <= 0 or (self._task is not None and not self._task.done()):
            return
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="housekeeping")

    async def stop(self) -> None:
        """End the task; a pass under way stops after its current batch."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval_s)
                return
            except TimeoutError:
                pass
            started = time.monotonic()
            try:
                report = await self.prune_once()
            except (DatabaseUnavailable, SharedStateUnavailable) as exc:
                log.warning("housekeeping: pass failed, next in %g s: %s", self._interval_s, exc)
                continue
            except Exception:
                log.exception("housekeeping: pass failed, next in %g s", self._interval_s)
                continue
            if report is None:
                log.debug("housekeeping: another process holds the %r lease", LEASE)
            elif report.deleted or not report.complete:
                log.info(
                    "housekeeping: pruned %s in %d batch(es), %.1f s%s",
                    report.summary(),
                    report.batches,
                    time.monotonic() - started,
                    "" if report.complete else " (stopped early)",
                )
