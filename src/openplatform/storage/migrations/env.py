"""Alembic environment: migrations run on a connection handed over by
``openplatform.storage.migrate`` (``config.attributes["connection"]``), or —
for the ``alembic`` command — on ``OPENPLATFORM_DATABASE_URL``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from openplatform.config import Settings
from openplatform.storage.engine import create_engine
from openplatform.storage.migrate import create_private_file, sqlite_file
from openplatform.storage.models import Base

target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things: copy-and-move
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_settings_database() -> None:
    url = Settings.from_env().database_url
    sqlite_path = sqlite_file(url)
    if sqlite_path is not None:
        create_private_file(sqlite_path)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")

connection = context.config.attributes.get("connection")
if connection is None:
    asyncio.run(run_on_settings_database())
else:
    run_migrations(connection)
