"""Users: ``session_epoch``, the generation of their browser sessions. A
password change or disabling the user moves it on, which ends every sign-in
cookie issued before (PROTOCOL §5). Indexes for revoking a user's refresh
tokens and unredeemed codes at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index(op.f("ix_refresh_tokens_user_id"), "refresh_tokens", ["user_id"])
    op.create_index(op.f("ix_authorization_codes_user_id"), "authorization_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_authorization_codes_user_id"), table_name="authorization_codes")
    op.drop_index(op.f("ix_refresh_tokens_user_id"), table_name="refresh_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_epoch")
