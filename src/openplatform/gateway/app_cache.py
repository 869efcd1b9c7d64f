"""App records for the gateway, kept in-process for a few seconds.

Every call needs its app (PROTOCOL §3.3 check 5); reading and decrypting it
each time would put a database round trip on the hot path. A record is kept
:data:`APP_CACHE_TTL_S` seconds at most. Whoever changes an app calls
:func:`invalidate_app`: this process forgets it at once, and so does every
other process of the same ``openplatform serve`` — the call replaces
``apps.changed`` in the data directory, and each lookup ``stat``s that file
and empties the cache when it changed. Processes on other hosts (another data
directory) see a change within the TTL. Unknown api_keys are remembered as
unknown for the same time, so garbage keys cannot hammer the database.
Tokens and sessions are never cached: revocation must be immediate.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from weakref import WeakKeyDictionary

from openplatform.gateway.shared_file import file_stamp, replace_file
from openplatform.storage.apps import AppRecord, AppRepository

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.database import Database

__all__ = ["APP_CACHE_TTL_S", "AppCache", "app_cache", "invalidate_app"]

APP_CACHE_TTL_S = 3.0
CHANGES_FILE = "apps.changed"
MAX_ENTRIES = 10_000

K = TypeVar("K", str, int)


class AppCache:
    """Apps by ``api_key`` and by id, each entry kept ``ttl_s`` seconds."""

    def __init__(
        self,
        apps: AppRepository,
        *,
        changes: Path | None = None,
        ttl_s: float = APP_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``changes``: the file other processes replace when an app changed."""
        self._apps = apps
        self._changes = changes
        self._seen = None if changes is None else file_stamp(changes)
        self._ttl_s = ttl_s
        self._clock = clock
        self._by_key: dict[str, tuple[float, AppRecord | None]] = {}
        self._by_id: dict[int, tuple[float, AppRecord | None]] = {}

    @property
    def changes(self) -> Path | None:
        return self._changes

    async def by_api_key(self, api_key: str) -> AppRecord | None:
        return await self._lookup(self._by_key, api_key, self._apps.get_by_api_key)

    async def by_id(self, app_id: int) -> AppRecord | None:
        return await self._lookup(self._by_id, app_id, self._apps.get)

    async def _lookup(
        self,
        entries: dict[K, tuple[float, AppRecord | None]],
        key: K,
        load: Callable[[K], Awaitable[AppRecord | None]],
    ) -> AppRecord | None:
        if self._changes is not None:
            stamp = file_stamp(self._changes)
            if stamp != self._seen:
                self._seen = stamp
                self.invalidate()
        now = self._clock()
        hit = entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await load(key)
        if len(entries) >= MAX_ENTRIES:
            self._drop_expired(entries, now)
            if len(entries) >= MAX_ENTRIES:
                entries.clear()
        entries[key] = (now + self._ttl_s, record)
        return record

    @staticmethod
    def _drop_expired(entries: dict[K, tuple[float, AppRecord | None]], now: float) -> None:
        for key in [key for key, (deadline, _) in entries.items() if deadline <= now]:
            del entries[key]

    def invalidate(self, app_id: int | None = None) -> None:
        """Forget one app (or every app) in this process: the next call reads it afresh."""
        if app_id is None:
            self._by_key.clear()
            self._by_id.clear()
            return
        self._by_id.pop(app_id, None)
        for key in [k for k, (_, rec) in self._by_key.items() if rec and rec.id == app_id]:
            del self._by_key[key]


_CACHES: WeakKeyDictionary[Database, AppCache] = WeakKeyDictionary()


def app_cache(services: Services) -> AppCache:
    """This process's app cache for the services' database."""
    cache = _CACHES.get(services.database)
    if cache is None:
        changes = services.settings.data_dir / CHANGES_FILE
        cache = _CACHES[services.database] = AppCache(services.database.apps, changes=changes)
    return cache


def invalidate_app(services: Services, app_id: int | None = None) -> None:
    """Call after changing, suspending, deleting or re-keying an app: every
    process sharing the data directory forgets it before its next call."""
    cache = app_cache(services)
    cache.invalidate(app_id)
    assert cache.changes is not None
    replace_file(cache.changes, secrets.token_bytes(16))
