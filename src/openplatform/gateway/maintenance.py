"""Check 1 of PROTOCOL §3.3: the platform, or some methods, in maintenance.

The state is set through the admin API (``PUT /admin/api/maintenance``, which
calls :func:`set_maintenance`) and must reach every server process at once.
It is kept in ``maintenance.json`` in the data directory, which every worker of
``openplatform serve`` shares: the writer replaces the file atomically, and
each call re-reads it only when its ``stat`` changed (one ``stat`` per call,
no parsing), so a switch is seen by the very next call in any worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from openplatform.errors import ApiError, Code
from openplatform.gateway.rate_limits import method_matches
from openplatform.gateway.shared_file import FileStamp, file_stamp, replace_file

if TYPE_CHECKING:
    from openplatform.config import Settings
    from openplatform.services import Services

__all__ = [
    "MaintenanceState",
    "MaintenanceSwitch",
    "check_maintenance",
    "current_maintenance",
    "maintenance_switch",
    "set_maintenance",
]

log = logging.getLogger(__name__)

FILE_NAME = "maintenance.json"


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


NOT_IN_MAINTENANCE = MaintenanceState()


class MaintenanceSwitch:
    """The maintenance state of one data directory, shared by its processes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: FileStamp | None = None
        self._state = NOT_IN_MAINTENANCE

    def current(self) -> MaintenanceState:
        stamp = file_stamp(self._path)
        if stamp is None:
            self._seen, self._state = None, NOT_IN_MAINTENANCE
        elif stamp != self._seen:
            self._state = self._read()
            self._seen = stamp
        return self._state

    def _read(self) -> MaintenanceState:
        try:
            data = orjson.loads(self._path.read_bytes())
            enabled = data["enabled"]
            methods = data["methods"]
            if not isinstance(enabled, bool) or not isinstance(methods, list):
                raise TypeError("enabled must be a bool and methods a list")
            return MaintenanceState(enabled, frozenset(str(m) for m in methods))
        except FileNotFoundError:
            return NOT_IN_MAINTENANCE
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.error("ignoring unreadable maintenance state %s: %s", self._path, exc)
            return NOT_IN_MAINTENANCE

    def set(self, state: MaintenanceState) -> None:
        """Replace the state atomically (readers see the old or the new file)."""
        replace_file(self._path, orjson.dumps(state.to_json()))
        self._seen, self._state = None, state


_SWITCHES: dict[Path, MaintenanceSwitch] = {}


def maintenance_switch(settings: Settings) -> MaintenanceSwitch:
    """This process's view of the maintenance state of ``settings.data_dir``."""
    path = (settings.data_dir / FILE_NAME).absolute()
    switch = _SWITCHES.get(path)
    if switch is None:
        switch = _SWITCHES[path] = MaintenanceSwitch(path)
    return switch


def current_maintenance(services: Services) -> MaintenanceState:
    return maintenance_switch(services.settings).current()


async def set_maintenance(
    services: Services, *, enabled: bool, methods: Iterable[str]
) -> MaintenanceState:
    """``PUT /admin/api/maintenance`` (PROTOCOL §5): an empty list is the whole platform."""
    state = MaintenanceState(enabled, frozenset(methods))
    maintenance_switch(services.settings).set(state)
    return state


def check_maintenance(state: MaintenanceState, method: str) -> None:
    """Check 1: 2 when the platform or ``method`` is in maintenance."""
    if state.blocks(method):
        what = f"{method} is" if state.methods else "the platform is"
        raise ApiError(
            Code.SERVICE_UNAVAILABLE, f"{what} in maintenance", headers={"Retry-After": "60"}
        )
