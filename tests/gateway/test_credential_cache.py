"""Apps and credentials in process memory (CredentialCache): read once, used
while their app's generation is the one they were read under, forgotten when
the app changes, bounded."""

from __future__ import annotations

from openplatform.gateway.credential_cache import UNKNOWN_KEY_TTL_S, CredentialCache
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database


class CountingReads:
    """Counts the database reads the cache makes."""

    def __init__(self, database: Database) -> None:
        self.reads = 0
        for repository, name in (
            (database.apps, "get_by_api_key"),
            (database.apps, "get"),
            (database.tokens, "find_access_token"),
            (database.tokens, "find_session"),
        ):
            original = getattr(repository, name)

            async def counted(*args: object, _original=original) -> object:
                self.reads += 1
                return await _original(*args)

            setattr(repository, name, counted)


async def test_records_are_read_once_per_generation(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="cached"))
    user = await database.users.create("u", "pw")
    grant = await database.tokens.create_grant(app.id, user.uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app.id, user.uid, "basic", 3600, None, True)
    reads = CountingReads(database)
    cache = CredentialCache(database)
    for _ in range(3):
        assert (await cache.app_by_key(app.api_key)) == app
        assert (await cache.access_token(issued.access_token)) is not None
        assert (await cache.session(issued.session_key or "")) is not None
    assert reads.reads == 3
    # the shared state reports the app's generation: what was read under
    # "not known yet" is not current; read again, then current
    assert not cache.observe(app.id, 7, read_under=None)
    await cache.app_by_key(app.api_key)
    await cache.access_token(issued.access_token)
    assert reads.reads == 5
    assert cache.observe(app.id, 7, read_under=cache.generation(app.id))
    await cache.app_by_key(app.api_key)
    await cache.access_token(issued.access_token)
    assert reads.reads == 5
    # another process changed the app: the next call's check reports 8
    assert not cache.observe(app.id, 8, read_under=7)
    await cache.access_token(issued.access_token)
    assert reads.reads == 6
    # fresh reads always go to the database
    await cache.app_by_key(app.api_key, fresh=True)
    assert reads.reads == 7


async def test_a_change_published_here_is_forgotten_at_once(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="before"))
    cache = CredentialCache(database)
    database.changes.subscribe(lambda ids: _forget(cache, ids))
    assert cache.observe(app.id, 1, read_under=1)
    assert (await cache.app_by_key(app.api_key)) == app
    await database.apps.update(app.id, {"name": "after"})  # publishes the change
    changed = await cache.app_by_key(app.api_key)
    assert changed is not None and changed.name == "after"
    assert cache.generation(app.id) is None


async def _forget(cache: CredentialCache, app_ids: frozenset[int]) -> None:
    cache.forget(app_ids)


async def test_unknown_api_keys_are_remembered_briefly(database: Database) -> None:
    now = [100.0]
    reads = CountingReads(database)
    cache = CredentialCache(database, clock=lambda: now[0])
    for _ in range(5):
        assert await cache.app_by_key("ak_nobody") is None
    assert reads.reads == 1
    now[0] += UNKNOWN_KEY_TTL_S
    assert await cache.app_by_key("ak_nobody") is None
    assert reads.reads == 2


async def test_memory_is_bounded(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="many tokens"))
    grant = await database.tokens.create_grant(app.id, None, "basic", "client_credentials")
    cache = CredentialCache(database, max_entries=8)
    for _ in range(30):
        issued = await database.tokens.issue(grant, app.id, None, "basic", 3600, None, False)
        assert await cache.access_token(issued.access_token) is not None
    assert len(cache._tokens) <= 8
    for key in (f"ak_unknown{i}" for i in range(30)):
        await cache.app_by_key(key)
    assert len(cache._unknown_keys) <= 8
