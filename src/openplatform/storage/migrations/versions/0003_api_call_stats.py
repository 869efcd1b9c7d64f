"""API call statistics: calls and total latency per app, minute, method and
error code (PROTOCOL §5, ``GET /admin/api/stats``). Server processes add their
counts with one upsert on the unique key; an app's rows go with the app.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_call_stats",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("app_id", ID, nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("latency_us_total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_api_call_stats_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_call_stats")),
        sa.UniqueConstraint(
            "app_id",
            "minute",
            "method",
            "error_code",
            name=op.f("uq_api_call_stats_app_id_minute_method_error_code"),
        ),
    )


def downgrade() -> None:
    op.drop_table("api_call_stats")
