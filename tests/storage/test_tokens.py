"""TokenRepository on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import select, update

from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import hash_token
from openplatform.storage.database import Database
from openplatform.storage.errors import UserDisabled
from openplatform.storage.models import AccessToken, Grant, RefreshToken, User, utcnow
from openplatform.storage.tokens import CredentialState, ExchangeOutcome, IssuePlan


@pytest.fixture
async def app_and_user(database: Database) -> tuple[int, int]:
    app = await database.apps.create(AppSettings(name="A"))
    user = await database.users.create("tokenuser", "pw")
    return app.id, user.uid


async def test_issue_and_find(database: Database, app_and_user: tuple[int, int]) -> None:
    app_id, uid = app_and_user
    scope = ["basic", "email"]
    grant = await database.tokens.create_grant(app_id, uid, scope, "authorization_code")
    before = utcnow()
    issued = await database.tokens.issue(grant, app_id, uid, "basic email", 3600, 86400, True)
    assert issued.expires_in == 3600
    assert issued.scope == "basic email"
    assert issued.refresh_token is not None
    assert issued.session_key is not None
    assert issued.session_secret is not None
    assert len({issued.access_token, issued.refresh_token, issued.session_key}) == 3
    assert issued.access_token not in repr(issued)

    record = await database.tokens.find_access_token(issued.access_token)
    assert record is not None
    assert (record.app_id, record.user_id, record.grant_id) == (app_id, uid, grant)
    assert record.scopes == {"basic", "email"}
    assert not record.revoked
    assert not record.expired()
    assert record.expires_at.tzinfo is UTC
    assert before + timedelta(seconds=3599) <= record.expires_at <= utcnow() + timedelta(hours=1)
    assert record.expired(record.expires_at)

    session = await database.tokens.find_session(issued.session_key)
    assert session is not None
    assert session.session_secret == issued.session_secret
    assert session.access_token_id == record.id == issued.access_token_id
    assert (session.app_id, session.user_id, session.scope) == (app_id, uid, "basic email")
    assert session.expires_at == record.expires_at
    assert not session.revoked

    assert await database.tokens.find_access_token(issued.refresh_token) is None
    assert await database.tokens.find_access_token("unknown") is None
    assert await database.tokens.find_session(issued.access_token) is None


async def test_client_credentials_token_has_no_user_refresh_or_session(
    database: Database, app_and_user: tuple[int, int]
) -> None:
    app_id, _ = app_and_user
    grant = await database.tokens.create_grant(app_id, None, "basic", "client_credentials")
    issued = await database.tokens.issue(grant, app_id, None, "basic", 600, None, False)
    assert (issued.refresh_token, issued.session_key, issued.session_secret) == (None, None, None)
    record = await database.tokens.find_access_token(issued.access_token)
    assert record is not None
    assert record.user_id is None


async def test_only_hashes_are_stored(database: Database, app_and_user: tuple[int, int]) -> None:
    app_id, uid = app_and_user
    grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app_id, uid, "basic", 3600, 60, True)
    async with database.sessions.read() as session:
        access = await session.scalar(select(AccessToken))
        refresh = await session.scalar(select(RefreshToken))
    assert access is not None
    assert refresh is not None
    assert access.token_hash == hash_token(issued.access_token)
    assert access.session_key_hash == hash_token(issued.session_key or "")
    assert access.session_secret_encrypted != issued.session_secret
    assert refresh.token_hash == hash_token(issued.refresh_token or "")


async def test_expired_token_is_found_with_its_expiry(
    database: Database, app_and_user: tuple[int, int]
) -> None:
    app_id, uid = app_and_user
    grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app_id, uid, "basic", 60, None, False)
    past = utcnow() - timedelta(seconds=1)
    async with database.sessions.write() as session:
        await session.execute(update(AccessToken).values(expires_at=past))
    record = await database.tokens.find_access_token(issued.access_token)
    assert record is not None
    assert record.expired()
    assert abs((record.expires_at - past).total_seconds()) < 0.001
    assert record.state(app_id) is CredentialState.EXPIRED


async def test_revoke_access_token(database: Database, app_and_user: tuple[int, int]) -> None:
    app_id, uid = app_and_user
    other_app = await database.apps.create(AppSettings(name="other"))
    grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app_id, uid, "basic", 3600, None, True)

    assert not await database.tokens.revoke_access_token(issued.access_token, other_app.id)
    assert await database.tokens.revoke_access_token(issued.access_token, app_id)
    assert not await database.tokens.revoke_access_token(issued.access_token, app_id)
    assert not await database.tokens.revoke_access_token("unknown", app_id)

    record = await database.tokens.find_access_token(issued.access_token)
    assert record is not None
    assert record.revoked
    session = await database.tokens.find_session(issued.session_key or "")
    assert session is not None
    assert session.revoked


async def test_revoke_grant_revokes_the_family(
    database: Database, app_and_user: tuple[int, int]
) -> None:
    app_id, uid = app_and_user
    family = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    first = await database.tokens.issue(family, app_id, uid, "basic", 3600, 600, True)
    second = await database.tokens.issue(family, app_id, uid, "basic", 3600, 600, True)
    unrelated_grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    unrelated = await database.tokens.issue(unrelated_grant, app_id, uid, "basic", 3600, 600, False)

    await database.tokens.revoke_grant(family)

    for issued in (first, second):
        record = await database.tokens.find_access_token(issued.access_token)
        assert record is not None
        assert record.revoked
        session = await database.tokens.find_session(issued.session_key or "")
        assert session is not None
        assert session.revoked
    async with database.sessions.read() as session:
        grants = {g.id: g.revoked_at for g in await session.scalars(select(Grant))}
        refresh = {r.token_hash: r.revoked_at for r in await session.scalars(select(RefreshToken))}
    assert grants[family] is not None
    assert grants[unrelated_grant] is None
    assert refresh[hash_token(first.refresh_token or "")] is not None
    assert refresh[hash_token(second.refresh_token or "")] is not None
    assert refresh[hash_token(unrelated.refresh_token or "")] is None
    unrelated_record = await database.tokens.find_access_token(unrelated.access_token)
    assert unrelated_record is not None
    assert not unrelated_record.revoked


async def test_credential_state_is_one_rule(
    database: Database, app_and_user: tuple[int, int]
) -> None:
    app_id, uid = app_and_user
    grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app_id, uid, "basic", 3600, 60, True)
    record = await database.tokens.find_access_token(issued.access_token)
    assert record is not None
    assert record.state(app_id) is CredentialState.LIVE
    assert record.state(app_id + 1) is CredentialState.INVALID  # another app's
    assert record.state(app_id, record.expires_at) is CredentialState.EXPIRED
    await database.tokens.revoke_access_token(issued.access_token, app_id)
    revoked = await database.tokens.find_access_token(issued.access_token)
    assert revoked is not None
    assert revoked.state(app_id, record.expires_at) is CredentialState.INVALID


async def test_disabling_a_user_revokes_everything_they_hold(
    database: Database, app_and_user: tuple[int, int]
) -> None:
    """PROTOCOL §5: at once, for good (enabling again brings nothing back);
    other users keep theirs; nothing can be issued for them meanwhile."""
    app_id, uid = app_and_user
    other = await database.users.create("other", "pw")
    held = {}
    for user in (uid, other.uid):
        grant = await database.tokens.create_grant(app_id, user, "basic", "authorization_code")
        held[user] = await database.tokens.issue(grant, app_id, user, "basic", 3600, 3600, True)
    code = await database.tokens.create_code(app_id, uid, None, "basic", None, None, 300)

    await database.users.update(uid, {"disabled": True})
    await database.users.update(uid, {"disabled": False})

    access = await database.tokens.find_access_token(held[uid].access_token)
    session = await database.tokens.find_session(held[uid].session_key or "")
    refresh = await database.tokens.find_refresh_token(held[uid].refresh_token or "")
    assert access is not None and access.state(app_id) is CredentialState.INVALID
    assert session is not None and session.state(app_id) is CredentialState.INVALID
    assert refresh is not None and refresh.revoked
    plan = IssuePlan("basic", 60, 60, True)
    redeemed = await database.tokens.redeem_code(code, app_id, lambda _: plan)
    assert redeemed.outcome is ExchangeOutcome.UNKNOWN
    kept = await database.tokens.find_access_token(held[other.uid].access_token)
    assert kept is not None and kept.state(app_id) is CredentialState.LIVE


async def test_nothing_is_issued_for_a_disabled_user(
    database: Database, app_and_user: tuple[int, int]
) -> None:
    app_id, uid = app_and_user
    grant = await database.tokens.create_grant(app_id, uid, "basic", "authorization_code")
    issued = await database.tokens.issue(grant, app_id, uid, "basic", 3600, 3600, True)
    code = await database.tokens.create_code(app_id, uid, None, "basic", None, None, 300)
    async with database.sessions.write() as session:  # disabled, nothing revoked (a race)
        await session.execute(update(User).where(User.id == uid).values(disabled=True))
    plan = IssuePlan("basic", 60, 60, True)
    assert (await database.tokens.redeem_code(code, app_id, lambda _: plan)).outcome is (
        ExchangeOutcome.UNKNOWN
    )
    rotated = await database.tokens.rotate_refresh_token(
        issued.refresh_token or "", app_id, 10, lambda _: plan
    )
    assert rotated.outcome is ExchangeOutcome.UNKNOWN
    with pytest.raises(UserDisabled):
        await database.tokens.issue_new_grant(app_id, uid, "password", plan)
