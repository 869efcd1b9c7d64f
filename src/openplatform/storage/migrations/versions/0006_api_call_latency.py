"""API call latency: a fixed-bucket histogram per app, minute and method
(PROTOCOL §5 usage statistics: p50/p95/p99 computed from the buckets). Server
processes add their bucket counts with one upsert on the unique key. Indexes
on ``minute`` for the retention sweep of both statistics tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_call_latency",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("app_id", ID, nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_api_call_latency_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_call_latency")),
        sa.UniqueConstraint(
            "app_id",
            "minute",
            "method",
            "bucket",
            name=op.f("uq_api_call_latency_app_id_minute_method_bucket"),
        ),
    )
    op.create_index(op.f("ix_api_call_latency_minute"), "api_call_latency", ["minute"])
    op.create_index(op.f("ix_api_call_stats_minute"), "api_call_stats", ["minute"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_call_stats_minute"), table_name="api_call_stats")
    op.drop_index(op.f("ix_api_call_latency_minute"), table_name="api_call_latency")
    op.drop_table("api_call_latency")
