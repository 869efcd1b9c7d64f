"""Grants, access tokens with their legacy session key/secret, and refresh
tokens (PROTOCOL §2, §3.1; RFC 6749 §1.4-§1.5, RFC 7009).

Every token, refresh token and session key is stored as its SHA-256 hash only
(:func:`~openplatform.storage.crypto.hash_token`); session secrets are stored
encrypted, since the md5 signature (PROTOCOL §3.2) needs the raw value. A
grant is a token family: revoking it revokes all it issued.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openplatform.storage.changes import AppChanges
from openplatform.storage.crypto import SecretBox, hash_token, new_secret, new_token
from openplatform.storage.engine import Sessions
from openplatform.storage.errors import UserDisabled
from openplatform.storage.models import (
    AccessToken,
    AuthorizationCode,
    Grant,
    RefreshToken,
    User,
    utcnow,
)

__all__ = [
    "AccessTokenRecord",
    "CodeRecord",
    "CredentialState",
    "Exchange",
    "ExchangeOutcome",
    "IssuePlan",
    "IssuedTokens",
    "RefreshRecord",
    "RefreshTokenRecord",
    "SessionRecord",
    "TokenRepository",
    "join_scope",
    "lock_user_for_issuing",
    "revoke_user_credentials_in",
]


def join_scope(scope: str | Sequence[str]) -> str:
    """A scope as stored: space-delimited (RFC 6749 §3.3)."""
    return scope if isinstance(scope, str) else " ".join(scope)


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What was issued, in plaintext: shown to the client once, never stored."""

    access_token: str = field(repr=False)
    expires_in: int
    expires_at: datetime
    scope: str
    refresh_token: str | None = field(repr=False)
    session_key: str | None = field(repr=False)
    session_secret: str | None = field(repr=False)
    access_token_id: int | None  # None: written by a group insert (app tokens)
    grant_id: int | None  # None: no token family (client_credentials)


class CredentialState(enum.Enum):
    """What a presented credential is worth (see :meth:`_Lifetime.state`)."""

    LIVE = "live"
    INVALID = "invalid"  # unknown to this app, or revoked (its user disabled included)
    EXPIRED = "expired"


class _Lifetime:
    """What every token record answers: its scopes, whether it has expired, and
    the one rule every credential check applies (gateway, introspection)."""

    __slots__ = ()
    app_id: int
    scope: str
    expires_at: datetime
    revoked: bool

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def expired(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.expires_at

    def state(self, app_id: int, now: datetime | None = None) -> CredentialState:
        """Whether the credential still acts for ``app_id``. A user who was
        disabled, or who revoked the app, had every credential revoked in that
        same transaction (:func:`revoke_user_credentials_in`), and issuing
        waits for such a change (:func:`lock_user_for_issuing`): ``revoked``
        covers them, so no per-call look at the user is needed."""
        if self.revoked or self.app_id != app_id:
            return CredentialState.INVALID
        if self.expired(now):
            return CredentialState.EXPIRED
        return CredentialState.LIVE


async def lock_user_for_issuing(session: AsyncSession, user_id: int | None) -> None:
    """Before issuing anything for ``user_id`` in ``session``'s transaction: hold
    the user's row (``FOR SHARE`` on PostgreSQL; SQLite's write transactions are
    serial anyway) until commit, so that disabling the user — which locks the
    row ``FOR UPDATE``, then revokes everything — happens wholly before or
    wholly after. Raises :class:`UserDisabled` if the user is disabled or gone."""
    if user_id is None:
        return
    disabled = await session.scalar(
        select(User.disabled).where(User.id == user_id).with_for_update(read=True)
    )
    if disabled is not False:
        raise UserDisabled(f"user {user_id} is disabled")


async def revoke_user_credentials_in(
    session: AsyncSession, user_id: int, app_id: int | None = None
) -> set[int]:
    """Revoke every grant of the user (for ``app_id``, or for every app) with
    all its access tokens, session keys and refresh tokens, and delete the
    user's unredeemed authorization codes — in the caller's transaction
    (disabling a user, PROTOCOL §5; revoking an app, ``/account``). The user's
    row is locked first (``FOR UPDATE``): an exchange that issues for the user
    (:func:`lock_user_for_issuing`) commits before this, or starts after it."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    live = select(AccessToken.app_id).where(
        AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None)
    )
    if app_id is not None:
        live = live.where(AccessToken.app_id == app_id)
    apps = set((await session.scalars(live.distinct())).all())
    now = utcnow()
    for model in (Grant, AccessToken, RefreshToken):
        condition = [model.user_id == user_id, model.revoked_at.is_(None)]
        if app_id is not None:
            condition.append(model.app_id == app_id)
        await session.execute(update(model).where(*condition).values(revoked_at=now))
    codes = [AuthorizationCode.user_id == user_id, AuthorizationCode.used_at.is_(None)]
    if app_id is not None:
        codes.append(AuthorizationCode.app_id == app_id)
    await session.execute(delete(AuthorizationCode).where(*codes))
    return apps


@dataclass(frozen=True, slots=True)
class AccessTokenRecord(_Lifetime):
    """An access token as stored. Callers answer 110 when ``revoked`` and 111
    when expired (PROTOCOL §3.3 check 12)."""

    id: int
    app_id: int
    user_id: int | None
    grant_id: int | None
    scope: str
    expires_at: datetime
    revoked: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionRecord(_Lifetime):
    """A legacy session (PROTOCOL §3.1 ``session_key``): it lives and dies with
    its access token (``access_token_id``). Callers answer 102 when unknown or
    ``revoked``, 112 when expired; ``session_secret`` signs (§3.2)."""

    access_token_id: int
    app_id: int
    user_id: int | None
    grant_id: int | None
    scope: str
    session_secret: str = field(repr=False)
    expires_at: datetime
    revoked: bool


# The hot reads of every call (PROTOCOL §3.3 checks 5, 8, 12): built once, so
# SQLAlchemy compiles them once and never rebuilds their cache keys.
_FIND_ACCESS_TOKEN = select(
    AccessToken.id,
    AccessToken.app_id,
    AccessToken.user_id,
    AccessToken.grant_id,
    AccessToken.scope,
    AccessToken.expires_at,
    AccessToken.revoked_at,
    AccessToken.created_at,
).where(AccessToken.token_hash == bindparam("token_hash"))
_FIND_SESSION = select(
    AccessToken.id,
    AccessToken.app_id,
    AccessToken.user_id,
    AccessToken.grant_id,
    AccessToken.scope,
    AccessToken.session_secret_encrypted,
    AccessToken.expires_at,
    AccessToken.revoked_at,
).where(AccessToken.session_key_hash == bindparam("session_key_hash"))


class TokenRepository:
    """Grants and the tokens issued under them."""

    def __init__(
        self, sessions: Sessions, box: SecretBox, changes: AppChanges | None = None
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._changes = changes or AppChanges()
        self._app_tokens = sessions.group_insert(cast(Table, AccessToken.__table__))

    async def create_grant(
        self, app_id: int, user_id: int | None, scope: str | Sequence[str], grant_type: str
    ) -> int:
        """A new token family for one authorization; its id."""
        async with self._sessions.write() as session:
            return await self.create_grant_in(session, app_id, user_id, scope, grant_type)

    async def create_grant_in(
        self,
        session: AsyncSession,
        app_id: int,
        user_id: int | None,
        scope: str | Sequence[str],
        grant_type: str,
    ) -> int:
        """:meth:`create_grant` inside the caller's transaction."""
        grant = Grant(
            app_id=app_id,
            user_id=user_id,
            scope=join_scope(scope),
            grant_type=grant_type,
            created_at=utcnow(),
        )
        session.add(grant)
        await session.flush()
        return grant.id

    async def issue(
        self,
        grant_id: int,
        app_id: int,
        user_id: int | None,
        scope: str | Sequence[str],
        access_ttl_s: int,
        refresh_ttl_s: int | None,
        with_session: bool,
    ) -> IssuedTokens:
        """An access token (+ a refresh token unless ``refresh_ttl_s`` is None, +
        a session key and secret when ``with_session``), all in one transaction."""
        async with self._sessions.write() as session:
            return await self.issue_in(
                session, grant_id, app_id, user_id, scope, access_ttl_s, refresh_ttl_s, with_session
            )

    async def issue_in(
        self,
        session: AsyncSession,
        grant_id: int,
        app_id: int,
        user_id: int | None,
        scope: str | Sequence[str],
        access_ttl_s: int,
        refresh_ttl_s: int | None,
        with_session: bool,
    ) -> IssuedTokens:
        """:meth:`issue` inside the caller's transaction (e.g. a refresh rotation,
        where marking the old token and issuing new ones must be one step)."""
        now = utcnow()
        scope_text = join_scope(scope)
        access_token = new_token()
        session_key = new_token() if with_session else None
        session_secret = new_secret() if with_session else None
        expires_at = now + timedelta(seconds=access_ttl_s)
        row = AccessToken(
            token_hash=hash_token(access_token),
            session_key_hash=None if session_key is None else hash_token(session_key),
            session_secret_encrypted=(
                None if session_secret is None else self._box.encrypt(session_secret)
            ),
            app_id=app_id,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope_text,
            expires_at=expires_at,
            created_at=now,
        )
        session.add(row)
        refresh_token = None
        if refresh_ttl_s is not None:
            refresh_token = new_token()
            session.add(
                RefreshToken(
                    token_hash=hash_token(refresh_token),
                    app_id=app_id,
                    user_id=user_id,
                    grant_id=grant_id,
                    scope=scope_text,
                    expires_at=now + timedelta(seconds=refresh_ttl_s),
                    created_at=now,
                )
            )
        await session.flush()
        return IssuedTokens(
            access_token=access_token,
            expires_in=access_ttl_s,
            expires_at=expires_at,
            scope=scope_text,
            refresh_token=refresh_token,
            session_key=session_key,
            session_secret=session_secret,
            access_token_id=row.id,
            grant_id=grant_id,
        )

    async def find_access_token(self, token: str) -> AccessTokenRecord | None:
        """The access token (revoked or expired ones included), or None. One
        SELECT on the latest committed data: a revocation by any process is
        seen at once (no cache)."""
        row = await self._sessions.first(_FIND_ACCESS_TOKEN, {"token_hash": hash_token(token)})
        if row is None:
            return None
        id_, app_id, user_id, grant_id, scope, expires_at, revoked_at, created_at = row
        return AccessTokenRecord(
            id=id_,
            app_id=app_id,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope,
            expires_at=expires_at,
            revoked=revoked_at is not None,
            created_at=created_at,
        )

    async def find_session(self, session_key: str) -> SessionRecord | None:
        """The session of ``session_key`` with its decrypted secret, or None (one
        SELECT, as :meth:`find_access_token`)."""
        row = await self._sessions.first(
            _FIND_SESSION, {"session_key_hash": hash_token(session_key)}
        )
        if row is None:
            return None
        id_, app_id, user_id, grant_id, scope, secret_encrypted, expires_at, revoked_at = row
        if secret_encrypted is None:
            return None
        return SessionRecord(
            access_token_id=id_,
            app_id=app_id,
            user_id=user_id,
            grant_id=grant_id,
            scope=scope,
            session_secret=self._box.decrypt(secret_encrypted),
            expires_at=expires_at,
            revoked=revoked_at is not None,
        )

    async def revoke_access_token(self, token: str, app_id: int) -> bool:
        """RFC 7009 §2.1: revoke the token (and its session key) if it belongs to
        ``app_id``. True when it was revoked now; False when unknown, another
        app's, or already revoked."""
        async with self._sessions.write() as session:
            result = await session.execute(
                update(AccessToken)
                .where(
                    AccessToken.token_hash == hash_token(token),
                    AccessToken.app_id == app_id,
                    AccessToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
        revoked = bool(result.rowcount)  # type: ignore[attr-defined]
        if revoked:
            await self._changes.publish([app_id])
        return revoked

    async def revoke_grant(self, grant_id: int) -> None:
        """Revoke the grant and every access token, session key and refresh token
        it issued, in one transaction."""
        async with self._sessions.write() as session:
            app_id = await session.scalar(select(Grant.app_id).where(Grant.id == grant_id))
            await self.revoke_grant_in(session, grant_id)
        if app_id is not None:
            await self._changes.publish([app_id])

    async def revoke_grant_in(self, session: AsyncSession, grant_id: int) -> None:
        """:meth:`revoke_grant` inside the caller's transaction."""
        now = utcnow()
        await session.execute(
            update(Grant)
            .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        for model in (AccessToken, RefreshToken):
            await session.execute(
                update(model)
                .where(model.grant_id == grant_id, model.revoked_at.is_(None))
                .values(revoked_at=now)
            )

    # --- OAuth authorization codes and refresh rotation (PROTOCOL §2) -----------
    # Each exchange is ONE write transaction that starts with a conditional
    # UPDATE: PostgreSQL row-locks the matched row until commit, so concurrent
    # exchanges re-check the condition and find the row already taken; on
    # SQLite the write transaction (BEGIN IMMEDIATE) serializes them. There is
    # no read-then-write.

    async def create_code(
        self,
        app_id: int,
        user_id: int,
        redirect_uri: str | None,
        scope: str | Sequence[str],
        code_challenge: str | None,
        code_challenge_method: str | None,
        ttl_s: int,
    ) -> str:
        """A new single-use authorization code (RFC 6749 §4.1.2), stored hashed."""
        code = new_token()
        now = utcnow()
        async with self._sessions.write() as session:
            session.add(
                AuthorizationCode(
                    code_hash=hash_token(code),
                    app_id=app_id,
                    user_id=user_id,
                    redirect_uri=redirect_uri,
                    scope=join_scope(scope),
                    code_challenge=code_challenge,
                    code_challenge_method=code_challenge_method,
                    expires_at=now + timedelta(seconds=ttl_s),
                    created_at=now,
                )
            )
        return code

    async def redeem_code(
        self, code: str, app_id: int, check: Callable[[CodeRecord], IssuePlan]
    ) -> Exchange:
        """Exchange ``code`` of ``app_id`` exactly once: mark it used, let
        ``check`` validate it (an exception rolls everything back and leaves the
        code usable) and issue the plan in a new grant, all in one transaction.
        A code used before: its grant is revoked (RFC 6749 §4.1.2), REUSED."""
        code_hash = hash_token(code)
        now = utcnow()
        async with self._sessions.write() as session:
            taken = (
                await session.execute(
                    update(AuthorizationCode)
                    .where(
                        AuthorizationCode.code_hash == code_hash,
                        AuthorizationCode.app_id == app_id,
                        AuthorizationCode.used_at.is_(None),
                        AuthorizationCode.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(
                        AuthorizationCode.id,
                        AuthorizationCode.user_id,
                        AuthorizationCode.redirect_uri,
                        AuthorizationCode.scope,
                        AuthorizationCode.code_challenge,
                        AuthorizationCode.code_challenge_method,
                    )
                )
            ).one_or_none()
            if taken is not None:
                try:
                    await lock_user_for_issuing(session, taken.user_id)
                except UserDisabled:
                    return Exchange(ExchangeOutcome.UNKNOWN)
                plan = check(
                    CodeRecord(
                        app_id=app_id,
                        user_id=taken.user_id,
                        redirect_uri=taken.redirect_uri,
                        scope=taken.scope,
                        code_challenge=taken.code_challenge,
                        code_challenge_method=taken.code_challenge_method,
                    )
                )
                grant_id = await self.create_grant_in(
                    session, app_id, taken.user_id, plan.scope, "authorization_code"
                )
                tokens = await self._issue_plan_in(session, grant_id, app_id, taken.user_id, plan)
                await session.execute(
                    update(AuthorizationCode)
                    .where(AuthorizationCode.id == taken.id)
                    .values(grant_id=grant_id)
                )
                return Exchange(ExchangeOutcome.ISSUED, tokens)
        async with self._sessions.write() as session:
            row = await session.scalar(
                select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
            )
            if row is None or row.app_id != app_id:
                return Exchange(ExchangeOutcome.UNKNOWN)
            if row.used_at is None:
                return Exchange(ExchangeOutcome.EXPIRED)
            if row.grant_id is not None:
                await self.revoke_grant_in(session, row.grant_id)
        await self._changes.publish([app_id])
        return Exchange(ExchangeOutcome.REUSED)

    async def rotate_refresh_token(
        self,
        token: str,
        app_id: int,
        reuse_grace_s: int,
        check: Callable[[RefreshRecord], IssuePlan],
    ) -> Exchange:
        """Use ``token`` of ``app_id`` exactly once (RFC 9700 §4.14.2): mark it
        rotated, let ``check`` validate it, issue the plan in the same grant —
        one transaction. A rotated token presented again within
        ``reuse_grace_s`` is ROTATED_RECENTLY (a racing client, not a thief);
        later, its grant is revoked and REUSED."""
        token_hash = hash_token(token)
        now = utcnow()
        live_grant = exists().where(Grant.id == RefreshToken.grant_id, Grant.revoked_at.is_(None))
        async with self._sessions.write() as session:
            taken = (
                await session.execute(
                    update(RefreshToken)
                    .where(
                        RefreshToken.token_hash == token_hash,
                        RefreshToken.app_id == app_id,
                        RefreshToken.rotated_at.is_(None),
                        RefreshToken.revoked_at.is_(None),
                        RefreshToken.expires_at > now,
                        live_grant,
                    )
                    .values(rotated_at=now)
                    .returning(RefreshToken.grant_id, RefreshToken.user_id, RefreshToken.scope)
                )
            ).one_or_none()
            if taken is not None:
                try:
                    await lock_user_for_issuing(session, taken.user_id)
                except UserDisabled:
                    return Exchange(ExchangeOutcome.UNKNOWN)
                plan = check(
                    RefreshRecord(
                        app_id=app_id,
                        user_id=taken.user_id,
                        grant_id=taken.grant_id,
                        scope=taken.scope,
                    )
                )
                tokens = await self._issue_plan_in(
                    session, taken.grant_id, app_id, taken.user_id, plan
                )
                return Exchange(ExchangeOutcome.ISSUED, tokens)
        async with self._sessions.write() as session:
            row = await session.scalar(
                select(RefreshToken).where(RefreshToken.token_hash == token_hash)
            )
            if row is None or row.app_id != app_id or row.revoked_at is not None:
                return Exchange(ExchangeOutcome.UNKNOWN)
            grant_revoked = await session.scalar(
                select(Grant.revoked_at.is_not(None)).where(Grant.id == row.grant_id)
            )
            if grant_revoked:
                return Exchange(ExchangeOutcome.UNKNOWN)
            if row.rotated_at is None:
                return Exchange(ExchangeOutcome.EXPIRED)
            if now - row.rotated_at <= timedelta(seconds=reuse_grace_s):
                return Exchange(ExchangeOutcome.ROTATED_RECENTLY)
            await self.revoke_grant_in(session, row.grant_id)
        await self._changes.publish([app_id])
        return Exchange(ExchangeOutcome.REUSED)

    async def issue_app_token(self, app_id: int, scope: str, ttl_s: int) -> IssuedTokens:
        """An access token for the app itself (client_credentials, RFC 6749
        §4.4): no user, no refresh token, no token family — one row, written
        with whatever other app tokens concurrent requests issue (group
        commit), so the token endpoint does not queue behind one writer."""
        now = utcnow()
        access_token = new_token()
        expires_at = now + timedelta(seconds=ttl_s)
        await self._app_tokens.add(
            {
                "token_hash": hash_token(access_token),
                "session_key_hash": None,
                "session_secret_encrypted": None,
                "app_id": app_id,
                "user_id": None,
                "grant_id": None,
                "scope": scope,
                "expires_at": expires_at,
                "revoked_at": None,
                "created_at": now,
            }
        )
        return IssuedTokens(
            access_token=access_token,
            expires_in=ttl_s,
            expires_at=expires_at,
            scope=scope,
            refresh_token=None,
            session_key=None,
            session_secret=None,
            access_token_id=None,
            grant_id=None,
        )

    async def issue_new_grant(
        self, app_id: int, user_id: int | None, grant_type: str, plan: IssuePlan
    ) -> IssuedTokens:
        """A new grant and its tokens in one transaction (client_credentials,
        password). Raises :class:`UserDisabled` for a disabled user."""
        async with self._sessions.write() as session:
            await lock_user_for_issuing(session, user_id)
            grant_id = await self.create_grant_in(session, app_id, user_id, plan.scope, grant_type)
            return await self._issue_plan_in(session, grant_id, app_id, user_id, plan)

    async def _issue_plan_in(
        self,
        session: AsyncSession,
        grant_id: int,
        app_id: int,
        user_id: int | None,
        plan: IssuePlan,
    ) -> IssuedTokens:
        return await self.issue_in(
            session,
            grant_id,
            app_id,
            user_id,
            plan.scope,
            plan.access_ttl_s,
            plan.refresh_ttl_s,
            plan.with_session,
        )

    async def find_refresh_token(self, token: str) -> RefreshTokenRecord | None:
        """The refresh token (rotated, revoked or expired ones included), or None.
        ``revoked`` is also true when its grant was revoked."""
        async with self._sessions.read() as session:
            found = (
                await session.execute(
                    select(RefreshToken, Grant.revoked_at)
                    .join(Grant, Grant.id == RefreshToken.grant_id)
                    .where(RefreshToken.token_hash == hash_token(token))
                )
            ).one_or_none()
        if found is None:
            return None
        row, grant_revoked_at = found
        return RefreshTokenRecord(
            app_id=row.app_id,
            user_id=row.user_id,
            grant_id=row.grant_id,
            scope=row.scope,
            expires_at=row.expires_at,
            rotated=row.rotated_at is not None,
            revoked=row.revoked_at is not None or grant_revoked_at is not None,
            created_at=row.created_at,
        )

    async def revoke_refresh_token(self, token: str, app_id: int) -> bool:
        """RFC 7009 §2.1: revoking a refresh token of ``app_id`` revokes its whole
        grant (every access token, session key and refresh token of it). False
        when unknown or another app's."""
        async with self._sessions.write() as session:
            grant_id = await session.scalar(
                select(RefreshToken.grant_id).where(
                    RefreshToken.token_hash == hash_token(token), RefreshToken.app_id == app_id
                )
            )
            if grant_id is None:
                return False
            await self.revoke_grant_in(session, grant_id)
        await self._changes.publish([app_id])
        return True


class ExchangeOutcome(enum.Enum):
    ISSUED = "issued"
    UNKNOWN = "unknown"  # no such code/token for this app, or revoked
    EXPIRED = "expired"
    REUSED = "reused"  # used before; what it issued is now revoked
    ROTATED_RECENTLY = "rotated_recently"  # refresh token rotated within the grace period


@dataclass(frozen=True, slots=True)
class Exchange:
    outcome: ExchangeOutcome
    tokens: IssuedTokens | None = None


@dataclass(frozen=True, slots=True)
class IssuePlan:
    """What to issue: scope, lifetimes, refresh token (None: none), session key."""

    scope: str
    access_ttl_s: int
    refresh_ttl_s: int | None
    with_session: bool


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """What an authorization code was bound to at /authorize."""

    app_id: int
    user_id: int
    redirect_uri: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    app_id: int
    user_id: int | None
    grant_id: int
    scope: str


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord(_Lifetime):
    app_id: int
    user_id: int | None
    grant_id: int
    scope: str
    expires_at: datetime
    rotated: bool
    revoked: bool
    created_at: datetime
