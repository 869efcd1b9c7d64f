"""Check 1 of PROTOCOL §3.3: the platform, or some methods, in maintenance.

The state is set through the admin API (``PUT /admin/api/maintenance``, which
calls :func:`set_maintenance`) and must reach every server process on every
host. The database is the source of truth: the state is the ``maintenance``
row of ``platform_settings``. Check 1 runs on every call, so no call queries
it: each process keeps the last state it read (:class:`MaintenanceSwitch`)
and re-reads it

* at most once per :data:`MAINTENANCE_REFRESH_S`, in the background (the call
  that notices answers from the state it has) — other hosts see a switch
  within that interval;
* at once when ``maintenance.changed`` in the data directory changed: the
  writer replaces that file after its database write, so every worker of the
  same ``openplatform serve`` sees a switch on its very next call (one
  ``stat`` per call).

At most one query is in flight per process. When the database cannot be read,
the last known state is kept (and logged) until a later read succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from openplatform.errors import ApiError, Code
from openplatform.gateway.rate_limits import method_matches
from openplatform.gateway.shared_file import FileStamp, file_stamp, replace_file
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.platform_settings import PlatformSettingsRepository

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.database import Database

__all__ = [
    "MAINTENANCE_REFRESH_S",
    "MaintenanceState",
    "MaintenanceSwitch",
    "check_maintenance",
    "current_maintenance",
    "maintenance_switch",
    "set_maintenance",
]

log = logging.getLogger(__name__)

MAINTENANCE_REFRESH_S = 1.0
SETTING_KEY = "maintenance"
SIGNAL_FILE = "maintenance.changed"


@dataclass(frozen=True, slots=True)
class MaintenanceState:
    """``enabled`` with no ``methods``: the whole platform; with ``methods``:
    those methods only (exact names or globs such as ``data.*``)."""

    enabled: bool = False
    methods: frozenset[str] = frozenset()

    def blocks(self, method: str) -> bool:
        if not self.enabled:
            return False
        return not self.methods or any(method_matches(method, m) for m in self.methods)

    def to_json(self) -> dict[str, object]:
        return {"enabled": self.enabled, "methods": sorted(self.methods)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MaintenanceState:
        """The state :meth:`to_json` stored; ValueError for anything else."""
        enabled = data.get("enabled")
        methods = data.get("methods")
        if not isinstance(enabled, bool) or not isinstance(methods, list):
            raise ValueError("enabled must be a bool and methods a list")
        if not all(isinstance(m, str) for m in methods):
            raise ValueError("methods must be strings")
        return cls(enabled, frozenset(methods))


NOT_IN_MAINTENANCE = MaintenanceState()


class _Never:
    """The signal stamp before the first read: differs from every stamp."""


_NEVER = _Never()


class MaintenanceSwitch:
    """This process's view of the maintenance state stored in the database."""

    def __init__(
        self,
        store: PlatformSettingsRepository,
        *,
        signal: Path | None = None,
        refresh_s: float = MAINTENANCE_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``signal``: the file that processes of the same host replace after a
        switch (None: only the periodic refresh)."""
        self._store = store
        self._signal = signal
        self._refresh_s = refresh_s
        self._clock = clock
        self._state = NOT_IN_MAINTENANCE
        self._seen: FileStamp | _Never | None = _NEVER  # signal stamp of the last read
        self._due = 0.0  # when the state is re-read in any case
        self._loading: asyncio.Task[None] | None = None
        self._started = 0  # reads begun ...
        self._finished = 0  # ... and the latest of them that ended
        self._generation = 0  # bumped by set(): a read begun before it is stale

    @property
    def state(self) -> MaintenanceState:
        """The last known state (no I/O)."""
        return self._state

    async def current(self) -> MaintenanceState:
        """The state for this call: the cached one, read afresh first when the
        same-host signal changed (or on the first call), re-read in the
        background when the refresh interval passed."""
        if self._stamp() != self._seen:
            # Only a read begun after the signal changed surely sees the
            # switch: the writer replaces the file after its commit.
            wanted = self._started + 1
            while self._finished < wanted:
                await asyncio.shield(self._load())
        elif self._clock() >= self._due:
            self._load()
        return self._state

    def _stamp(self) -> FileStamp | None:
        return None if self._signal is None else file_stamp(self._signal)

    def _load(self) -> asyncio.Task[None]:
        """The read in flight, or a new one (never two at once)."""
        if self._loading is None:
            self._started += 1
            read = self._read(self._started, self._stamp(), self._generation)
            self._loading = asyncio.get_running_loop().create_task(read)
        return self._loading

    async def _read(self, number: int, stamp: FileStamp | None, generation: int) -> None:
        try:
            data = await self._store.get(SETTING_KEY)
            state = NOT_IN_MAINTENANCE if data is None else MaintenanceState.from_json(data)
        except DatabaseUnavailable as exc:
            log.warning("maintenance state not refreshed, keeping the last known: %s", exc)
        except ValueError as exc:
            log.error("ignoring malformed maintenance state in the database: %s", exc)
        except Exception:
            log.exception("maintenance state not refreshed, keeping the last known")
        else:
            if generation == self._generation:
                self._state = state
        finally:
            self._seen = stamp
            self._due = self._clock() + self._refresh_s
            self._finished = number
            self._loading = None

    async def set(self, state: MaintenanceState) -> None:
        """Store ``state`` (raises ``DatabaseUnavailable`` in an outage), then
        replace the signal file; this process sees it at once."""
        await self._store.set(SETTING_KEY, state.to_json())
        self._generation += 1
        self._state = state
        if self._signal is not None:
            replace_file(self._signal, secrets.token_bytes(16))


_SWITCHES: WeakKeyDictionary[Database, MaintenanceSwitch] = WeakKeyDictionary()


def maintenance_switch(services: Services) -> MaintenanceSwitch:
    """This process's maintenance switch for the services' database, signalled
    through their data directory."""
    switch = _SWITCHES.get(services.database)
    if switch is None:
        signal = (services.settings.data_dir / SIGNAL_FILE).absolute()
        switch = MaintenanceSwitch(services.database.platform_settings, signal=signal)
        _SWITCHES[services.database] = switch
    return switch


def current_maintenance(services: Services) -> MaintenanceState:
    """The state this process last knew (no I/O; see :meth:`MaintenanceSwitch.current`)."""
    return maintenance_switch(services).state


async def set_maintenance(
    services: Services, *, enabled: bool, methods: Iterable[str]
) -> MaintenanceState:
    """``PUT /admin/api/maintenance`` (PROTOCOL §5): an empty list is the whole platform."""
    state = MaintenanceState(enabled, frozenset(methods))
    await maintenance_switch(services).set(state)
    return state


def check_maintenance(state: MaintenanceState, method: str) -> None:
    """Check 1: 2 when the platform or ``method`` is in maintenance."""
    if state.blocks(method):
        what = f"{method} is" if state.methods else "the platform is"
        raise ApiError(
            Code.SERVICE_UNAVAILABLE, f"{what} in maintenance", headers={"Retry-After": "60"}
        )
