"""A database that cannot be reached raises DatabaseUnavailable (mapped to code 2);
constraint violations are not mistaken for outages."""

from __future__ import annotations

import pytest

from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.errors import DatabaseUnavailable, DuplicateError


async def test_unreachable_database_raises_database_unavailable() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/none", SecretBox("k"))
    try:
        with pytest.raises(DatabaseUnavailable, match="database unavailable"):
            await database.apps.get_by_api_key("ak_x")
    finally:
        await database.close()


async def test_duplicate_is_not_an_outage(database: Database) -> None:
    await database.users.create(username="dup", password="long-enough-pw")
    with pytest.raises(DuplicateError):
        await database.users.create(username="dup", password="long-enough-pw")
