"""App records for the gateway, kept in-process for a few seconds.

Every call needs its app (PROTOCOL §3.3 check 5); reading and decrypting it
each time would put a database round trip on the hot path. A record is kept
:data:`APP_CACHE_TTL_S` seconds, so a change made through another process is
seen within that time; a change made in this process is seen at once when the
changer calls :func:`invalidate_app`. Unknown api_keys are remembered as
unknown for the same time, so garbage keys cannot hammer the database.
Tokens and sessions are never cached: revocation must be immediate.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar
from weakref import WeakKeyDictionary

from openplatform.storage.apps import AppRecord, AppRepository

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.database import Database

__all__ = ["APP_CACHE_TTL_S", "AppCache", "app_cache", "invalidate_app"]

APP_CACHE_TTL_S = 3.0
MAX_ENTRIES = 10_000

K = TypeVar("K", str, int)


class AppCache:
    """Apps by ``api_key`` and by id, each entry kept ``ttl_s`` seconds."""

    def __init__(
        self,
        apps: AppRepository,
        *,
        ttl_s: float = APP_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._apps = apps
        self._ttl_s = ttl_s
        self._clock = clock
        self._by_key: dict[str, tuple[float, AppRecord | None]] = {}
        self._by_id: dict[int, tuple[float, AppRecord | None]] = {}

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
        """Forget one app (or every app): the next call reads it afresh."""
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
        cache = _CACHES[services.database] = AppCache(services.database.apps)
    return cache


def invalidate_app(services: Services, app_id: int | None = None) -> None:
    """Call after changing, suspending, deleting or re-keying an app."""
    app_cache(services).invalidate(app_id)
