"""Indexes for the housekeeping (:mod:`openplatform.storage.prune`), which
deletes expired and revoked credentials in bounded batches: ``expires_at`` of
access tokens, refresh tokens and authorization codes, and ``revoked_at`` of
access and refresh tokens over the revoked rows only (partial indexes, on
SQLite and PostgreSQL alike: the live rows, nearly all of them, are not in
it). Without them each batch would scan the whole table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXPIRING = ("access_tokens", "refresh_tokens", "authorization_codes")
REVOCABLE = ("access_tokens", "refresh_tokens")


def upgrade() -> None:
    for table in EXPIRING:
        op.create_index(op.f(f"ix_{table}_expires_at"), table, ["expires_at"])
    revoked = sa.text("revoked_at IS NOT NULL")
    for table in REVOCABLE:
        op.create_index(
            op.f(f"ix_{table}_revoked_at"),
            table,
            ["revoked_at"],
            sqlite_where=revoked,
            postgresql_where=revoked,
        )


def downgrade() -> None:
    for table in REVOCABLE:
        op.drop_index(op.f(f"ix_{table}_revoked_at"), table_name=table)
    for table in EXPIRING:
        op.drop_index(op.f(f"ix_{table}_expires_at"), table_name=table)
