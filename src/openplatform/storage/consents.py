"""Consent: the scopes a user granted an app, remembered so the consent page
can be skipped (PROTOCOL §2) and listed on ``/account`` for revocation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from openplatform.storage.changes import AppChanges
from openplatform.storage.engine import Sessions
from openplatform.storage.models import Consent, utcnow
from openplatform.storage.tokens import revoke_user_credentials_in

__all__ = ["ConsentRecord", "ConsentRepository", "merge_scopes"]


def merge_scopes(*scopes: str | Iterable[str]) -> str:
    """The union of scopes (space-delimited strings or lists), sorted, space-delimited."""
    union: set[str] = set()
    for scope in scopes:
        union.update(scope.split() if isinstance(scope, str) else scope)
    return " ".join(sorted(union))


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    user_id: int
    app_id: int
    scope: str  # space-delimited, sorted
    created_at: datetime
    updated_at: datetime

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    def covers(self, requested: str | Iterable[str]) -> bool:
        """Whether every requested scope was granted already (skip the page)."""
        wanted = requested.split() if isinstance(requested, str) else requested
        return self.scopes.issuperset(wanted)


_GET_CONSENT = select(
    Consent.user_id, Consent.app_id, Consent.scope, Consent.created_at, Consent.updated_at
).where(Consent.user_id == bindparam("user_id"), Consent.app_id == bindparam("app_id"))


def _record_of_row(row: Row[*tuple[Any, ...]]) -> ConsentRecord:
    """A row of ``_GET_CONSENT``, in the order of ConsentRecord's fields."""
    return ConsentRecord(*row)


def _record(row: Consent) -> ConsentRecord:
    return ConsentRecord(
        user_id=row.user_id,
        app_id=row.app_id,
        scope=row.scope,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ConsentRepository:
    def __init__(self, sessions: Sessions, changes: AppChanges | None = None) -> None:
        self._sessions = sessions
        self._changes = changes or AppChanges()

    async def get(self, user_id: int, app_id: int) -> ConsentRecord | None:
        row = await self._sessions.first(_GET_CONSENT, {"user_id": user_id, "app_id": app_id})
        return None if row is None else _record_of_row(row)

    async def grant(self, user_id: int, app_id: int, scope: str | Iterable[str]) -> ConsentRecord:
        """Remember that the user granted ``scope``, adding to what they granted
        before. Concurrent grants for one (user, app) all end up in the union."""
        now = utcnow()
        async with self._sessions.write() as session:
            await self._insert_if_missing(session, user_id, app_id, now)
            # Row-locked on PostgreSQL; SQLite's write transaction holds the lock.
            row = await session.scalar(
                select(Consent)
                .where(Consent.user_id == user_id, Consent.app_id == app_id)
                .with_for_update()
            )
            assert row is not None
            row.scope = merge_scopes(row.scope, scope)
            row.updated_at = now
        return _record(row)

    async def _insert_if_missing(
        self, session: AsyncSession, user_id: int, app_id: int, now: datetime
    ) -> None:
        values = {
            "user_id": user_id,
            "app_id": app_id,
            "scope": "",
            "created_at": now,
            "updated_at": now,
        }
        insert = sqlite_insert if self._sessions.is_sqlite else pg_insert
        await session.execute(
            insert(Consent)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["user_id", "app_id"])
        )

    async def list_for_user(self, user_id: int) -> list[ConsentRecord]:
        """The user's consents, most recently granted first (``/account``)."""
        async with self._sessions.read() as session:
            rows = (
                await session.scalars(
                    select(Consent)
                    .where(Consent.user_id == user_id)
                    .order_by(Consent.updated_at.desc(), Consent.id.desc())
                )
            ).all()
        return [_record(row) for row in rows]

    async def revoke(self, user_id: int, app_id: int) -> bool:
        """Forget the consent and revoke, in the same transaction, every grant of
        the user for the app with all its tokens and session keys; pending
        authorization codes are deleted. True when there was a consent."""
        async with self._sessions.write() as session:
            await revoke_user_credentials_in(session, user_id, app_id)  # locks the user first
            result = await session.execute(
                delete(Consent).where(Consent.user_id == user_id, Consent.app_id == app_id)
            )
        await self._changes.publish([app_id])
        return bool(result.rowcount)  # type: ignore[attr-defined]
