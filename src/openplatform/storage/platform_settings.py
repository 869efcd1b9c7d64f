"""Platform-wide settings (PROTOCOL §5, e.g. the maintenance switch): one JSON
object per key in ``platform_settings``, the source of truth that every server
process on every host reads. Callers cache what they read; see
:mod:`openplatform.gateway.maintenance`."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from openplatform.storage.engine import Sessions
from openplatform.storage.models import PlatformSetting, utcnow

__all__ = ["PlatformSettingsRepository"]

_GET = select(PlatformSetting.value).where(PlatformSetting.key == bindparam("key"))


class PlatformSettingsRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def get(self, key: str) -> dict[str, object] | None:
        """The value stored under ``key``, or None when it was never set
        (one SELECT; raises ``DatabaseUnavailable`` in an outage)."""
        row = await self._sessions.first(_GET, {"key": key})
        if row is None:
            return None
        value: dict[str, object] = dict(row[0])
        return value

    async def set(self, key: str, value: Mapping[str, object]) -> None:
        """Store ``value`` under ``key`` (insert or replace, one statement, so
        concurrent writers of a new key cannot collide)."""
        values = {"key": key, "value": dict(value), "updated_at": utcnow()}
        insert = sqlite_insert if self._sessions.is_sqlite else pg_insert
        statement = insert(PlatformSetting).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[PlatformSetting.key],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
        async with self._sessions.write() as session:
            await session.execute(statement)
