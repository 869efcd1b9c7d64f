"""The durable store: one engine, its sessions, and the typed repositories
(apps, users, tokens, consents, admin tokens, the apps' data store) that
business code uses. No
other module needs to import a database driver."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import text

from openplatform.config import DEFAULT_DB_TIMEOUT_S, Settings
from openplatform.storage.admin_tokens import AdminTokenRepository
from openplatform.storage.apps import AppRepository
from openplatform.storage.call_stats import CallStatsRepository
from openplatform.storage.changes import AppChanges
from openplatform.storage.consents import ConsentRepository
from openplatform.storage.crypto import SecretBox
from openplatform.storage.engine import Sessions, create_engine
from openplatform.storage.platform_settings import PlatformSettingsRepository
from openplatform.storage.sql_data_store import SqlDataStore
from openplatform.storage.tokens import TokenRepository
from openplatform.storage.users import UserRepository

__all__ = ["Database", "open_database"]


class Database:
    """Open a database by URL (``sqlite://…``, ``postgresql://…`` or their async
    driver forms). Creating it does no I/O; connections open on first use."""

    def __init__(
        self,
        url: str,
        box: SecretBox,
        *,
        echo: bool = False,
        timeout_s: float = DEFAULT_DB_TIMEOUT_S,
    ) -> None:
        self.engine = create_engine(url, echo=echo, timeout_s=timeout_s)
        self.sessions = Sessions(self.engine, timeout_s=timeout_s)
        self.box = box
        self.changes = AppChanges()
        self.apps = AppRepository(self.sessions, box, self.changes)
        self.users = UserRepository(self.sessions, self.changes)
        self.tokens = TokenRepository(self.sessions, box, self.changes)
        self.consents = ConsentRepository(self.sessions, self.changes)
        self.admin_tokens = AdminTokenRepository(self.sessions)
        self.platform_settings = PlatformSettingsRepository(self.sessions)
        self.call_stats = CallStatsRepository(self.sessions)
        self.data_store = SqlDataStore(self.sessions)

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The settings' database, with the secret key of the settings (generated
        into the data directory on first use when ``OPENPLATFORM_SECRET_KEY`` is
        unset)."""
        return cls(
            settings.database_url,
            SecretBox(settings.secret_key_material()),
            timeout_s=settings.db_timeout_s,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.sessions.is_sqlite

    async def ping(self) -> None:
        """Raise if the database does not answer (for ``/readyz``)."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection (on SQLite this checkpoints the WAL)."""
        await self.sessions.close()
        await self.engine.dispose()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def open_database(settings: Settings) -> Database:
    """:meth:`Database.from_settings` (no I/O besides the secret key file)."""
    return Database.from_settings(settings)
