"""AdminTokenRepository on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select

from openplatform.storage.crypto import hash_token
from openplatform.storage.database import Database
from openplatform.storage.models import AdminToken


async def test_create_verify_revoke(database: Database) -> None:
    token = await database.admin_tokens.create("ci")
    assert len(token) >= 43
    assert await database.admin_tokens.verify(token)
    assert not await database.admin_tokens.verify(token + "x")
    assert not await database.admin_tokens.verify("")
    another = await database.admin_tokens.create()
    assert another != token

    async with database.sessions.read() as session:
        rows = (await session.scalars(select(AdminToken).order_by(AdminToken.id))).all()
    assert [(row.token_hash, row.label) for row in rows] == [
        (hash_token(token), "ci"),
        (hash_token(another), ""),
    ]

    assert await database.admin_tokens.revoke(token)
    assert not await database.admin_tokens.revoke(token)
    assert not await database.admin_tokens.verify(token)
    assert await database.admin_tokens.verify(another)
