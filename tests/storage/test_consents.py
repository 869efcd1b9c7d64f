"""ConsentRepository on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database
from openplatform.storage.tokens import CredentialState


async def test_grant_merges_scopes(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="A"))
    user = await database.users.create("consenter", "pw")
    assert await database.consents.get(user.uid, app.id) is None

    first = await database.consents.grant(user.uid, app.id, "basic email")
    assert first.scopes == {"basic", "email"}
    assert first.covers("email")
    assert not first.covers(["email", "mobile"])

    merged = await database.consents.grant(user.uid, app.id, ["mobile", "basic"])
    assert merged.scope == "basic email mobile"
    assert merged.created_at == first.created_at
    assert merged.updated_at >= first.updated_at
    assert await database.consents.get(user.uid, app.id) == merged


async def test_concurrent_grants_all_land(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="A"))
    user = await database.users.create("racer", "pw")
    scopes = ["basic", "email", "mobile", "data"]
    await asyncio.gather(*(database.consents.grant(user.uid, app.id, s) for s in scopes * 3))
    consent = await database.consents.get(user.uid, app.id)
    assert consent is not None
    assert consent.scopes == set(scopes)


async def test_list_for_user(database: Database) -> None:
    first_app = await database.apps.create(AppSettings(name="first"))
    second_app = await database.apps.create(AppSettings(name="second"))
    user = await database.users.create("lister", "pw")
    other = await database.users.create("someone", "pw")
    await database.consents.grant(user.uid, first_app.id, "basic")
    await database.consents.grant(user.uid, second_app.id, "basic")
    await database.consents.grant(other.uid, first_app.id, "basic")
    listed = await database.consents.list_for_user(user.uid)
    assert [c.app_id for c in listed] == [second_app.id, first_app.id]
    assert await database.consents.list_for_user(999_999) == []


async def test_revoke_revokes_the_users_grants_for_the_app(database: Database) -> None:
    app = await database.apps.create(AppSettings(name="A"))
    other_app = await database.apps.create(AppSettings(name="B"))
    user = await database.users.create("revoker", "pw")
    other_user = await database.users.create("bystander", "pw")
    tokens = {}
    for app_id, uid in ((app.id, user.uid), (other_app.id, user.uid), (app.id, other_user.uid)):
        await database.consents.grant(uid, app_id, "basic")
        grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
        issued = await database.tokens.issue(grant, app_id, uid, "basic", 3600, 60, True)
        tokens[app_id, uid] = issued

    assert await database.consents.revoke(user.uid, app.id)
    assert not await database.consents.revoke(user.uid, app.id)

    assert await database.consents.get(user.uid, app.id) is None
    revoked = await database.tokens.find_access_token(tokens[app.id, user.uid].access_token)
    assert revoked is not None
    assert revoked.revoked
    session = await database.tokens.find_session(tokens[app.id, user.uid].session_key or "")
    assert session is not None
    assert session.revoked
    # Other apps of the user and other users of the app keep theirs.
    for app_id, uid in ((other_app.id, user.uid), (app.id, other_user.uid)):
        kept = await database.tokens.find_access_token(tokens[app_id, uid].access_token)
        assert kept is not None
        assert kept.state(app_id) is CredentialState.LIVE
    assert await database.consents.get(other_user.uid, app.id) is not None


async def test_concurrent_grants_from_two_processes_worth_of_pools(
    database: Database, database_url: str
) -> None:
    """Two Database objects (as two server workers would hold) merging consent
    for the same user and app at once: no lost update, no "database is locked"."""
    from openplatform.storage.crypto import SecretBox
    from tests.conftest import TEST_SECRET_KEY

    app = await database.apps.create(AppSettings(name="A"))
    user = await database.users.create("twoworkers", "pw")
    second = Database(database_url, SecretBox(TEST_SECRET_KEY))
    try:
        scopes = ["basic", "email", "mobile", "data"]
        await asyncio.gather(
            *(
                db.consents.grant(user.uid, app.id, scope)
                for db in (database, second)
                for scope in scopes * 4
            )
        )
    finally:
        await second.close()
    consent = await database.consents.get(user.uid, app.id)
    assert consent is not None
    assert consent.scopes == set(scopes)
