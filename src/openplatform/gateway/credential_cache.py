"""Apps, access tokens and session keys in process memory — and never served
once they changed, in any process on any host.

Every call needs its app (PROTOCOL §3.3 check 5) and, acting for a user, its
access token or session key (checks 8 and 12): reading them from the database
each time would be most of a call's cost. A process keeps what it read,
tagged with the *generation* of the app it last saw. The generation lives in
the shared state and changes whenever the app's settings or any of its
credentials change (:meth:`SharedState.bump_generation`); the one atomic
shared-state step of every call (checks 10, 11 and 13) reports it. When it
differs from the generation the call's records were read under, the gateway
reads them afresh and checks again before the method runs
(:meth:`Gateway._run`). So a revocation, a suspension or a rotated secret
takes effect with the next call, everywhere, as if nothing were cached.

Changes come from the repositories, which publish the apps concerned after
their commit (:mod:`openplatform.storage.changes`); this process then forgets
those apps at once and moves their generation on in the shared state.

Memory is bounded (``max_entries`` per kind, oldest dropped first). Unknown
api_keys are remembered as unknown for a few seconds, so garbage keys cannot
hammer the database; unknown tokens are not remembered (a token that does
not exist yet cannot be guessed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from itertools import islice
from typing import TYPE_CHECKING, TypeVar
from weakref import WeakKeyDictionary

from openplatform.storage.apps import AppRecord
from openplatform.storage.tokens import AccessTokenRecord, SessionRecord

if TYPE_CHECKING:
    from openplatform.services import Services
    from openplatform.storage.database import Database

__all__ = ["CredentialCache", "credential_cache", "invalidate_app"]

MAX_ENTRIES = 100_000  # per kind; a token with its key takes ~400 bytes: ~40 MB at most
UNKNOWN_KEY_TTL_S = 3.0


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
R = TypeVar("R", AccessTokenRecord, SessionRecord)


def _make_room(entries: dict[K, V], max_entries: int) -> None:
    """Drop the oldest quarter when full (dicts keep insertion order)."""
    if len(entries) >= max_entries:
        for key in list(islice(entries, max(max_entries // 4, 1))):
            del entries[key]


class CredentialCache:
    """The records this process read, current to the generation it knows."""

    def __init__(
        self,
        database: Database,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._clock = clock
        self._max_entries = max_entries
        self._generations: dict[int, int] = {}  # app id -> the generation last seen
        self._apps_by_key: dict[str, tuple[AppRecord, int | None]] = {}
        self._apps_by_id: dict[int, tuple[AppRecord, int | None]] = {}
        self._unknown_keys: dict[str, float] = {}  # api_key -> until when it is unknown
        # token or session key -> (record, the generation it was read under)
        self._tokens: dict[str, tuple[AccessTokenRecord, int | None]] = {}
        self._sessions: dict[str, tuple[SessionRecord, int | None]] = {}

    # -- generations ---------------------------------------------------------

    def generation(self, app_id: int) -> int | None:
        """The app's generation this process last saw (None: not yet)."""
        return self._generations.get(app_id)

    def observe(self, app_id: int, generation: int, read_under: int | None) -> bool:
        """The shared state reported ``generation`` for the app: remember it.
        True when records read under ``read_under`` are current."""
        if self._generations.get(app_id) != generation:
            self._generations[app_id] = generation
        return read_under == generation

    def forget(self, app_ids: frozenset[int]) -> None:
        """These apps changed: nothing of theirs read before is used again."""
        for app_id in app_ids:
            self._generations.pop(app_id, None)
            self._apps_by_id.pop(app_id, None)
        for key in [k for k, (app, _) in self._apps_by_key.items() if app.id in app_ids]:
            del self._apps_by_key[key]

    def forget_everything(self) -> None:
        """The generations cannot be trusted (the shared state was unreachable)."""
        self._generations.clear()

    # -- reads ---------------------------------------------------------------

    async def app_by_key(self, api_key: str, *, fresh: bool = False) -> AppRecord | None:
        hit = None if fresh else self._apps_by_key.get(api_key)
        if hit is not None and hit[1] == self._generations.get(hit[0].id):
            return hit[0]
        if not fresh and self._unknown_keys.get(api_key, 0.0) > self._clock():
            return None
        app = await self._db.apps.get_by_api_key(api_key)
        if app is None:
            _make_room(self._unknown_keys, self._max_entries)
            self._unknown_keys[api_key] = self._clock() + UNKNOWN_KEY_TTL_S
            return None
        self._unknown_keys.pop(api_key, None)
        _make_room(self._apps_by_key, self._max_entries)
        self._apps_by_key[api_key] = (app, self._generations.get(app.id))
        return app

    async def app_by_id(self, app_id: int, *, fresh: bool = False) -> AppRecord | None:
        hit = None if fresh else self._apps_by_id.get(app_id)
        if hit is not None and hit[1] == self._generations.get(app_id):
            return hit[0]
        app = await self._db.apps.get(app_id)
        if app is not None:
            _make_room(self._apps_by_id, self._max_entries)
            self._apps_by_id[app_id] = (app, self._generations.get(app_id))
        return app

    async def access_token(self, token: str, *, fresh: bool = False) -> AccessTokenRecord | None:
        return await self._read(self._tokens, token, self._db.tokens.find_access_token, fresh)

    async def session(self, session_key: str, *, fresh: bool = False) -> SessionRecord | None:
        return await self._read(self._sessions, session_key, self._db.tokens.find_session, fresh)

    async def _read(
        self,
        entries: dict[str, tuple[R, int | None]],
        key: str,
        load: Callable[[str], Awaitable[R | None]],
        fresh: bool,
    ) -> R | None:
        hit = None if fresh else entries.get(key)
        if hit is not None and hit[1] == self._generations.get(hit[0].app_id):
            return hit[0]
        record = await load(key)
        if record is not None:
            _make_room(entries, self._max_entries)
            entries[key] = (record, self._generations.get(record.app_id))
        return record


_CACHES: WeakKeyDictionary[Database, CredentialCache] = WeakKeyDictionary()


def credential_cache(services: Services) -> CredentialCache:
    """This process's cache for the services' database, made on first use and
    told of every change the database's repositories publish."""
    cache = _CACHES.get(services.database)
    if cache is None:
        cache = _CACHES[services.database] = CredentialCache(services.database)

        async def changed(app_ids: frozenset[int]) -> None:
            cache.forget(app_ids)  # the shared state's generation moves on too (Services)

        services.database.changes.subscribe(changed)
    return cache


async def invalidate_app(services: Services, app_id: int) -> None:
    """For a change made outside the repositories (tests, repairs): every
    process reads the app and its credentials afresh on its next call."""
    await services.database.changes.publish([app_id])
