"""The data store (PROTOCOL §4 "data"): per-app usage (bytes against the
storage quota, the last object id), users' preferences, object types and
their properties, objects and their values, hash-key values, association
definitions and associations. Every data row records the bytes it was charged;
an app's rows go with the app, a type's properties, objects and hash values
with the type.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _app_id(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("app_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f(f"fk_{table}_app_id_apps"), ondelete="CASCADE"
        ),
    ]


def _references(table: str, column: str, target: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column(column, ID, nullable=False),
        sa.ForeignKeyConstraint(
            [column],
            [f"{target}.id"],
            name=op.f(f"fk_{table}_{column}_{target}"),
            ondelete="CASCADE",
        ),
    ]


def _value_columns() -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("int_value", sa.BigInteger(), nullable=True),
        sa.Column("text_value", sa.Text(), nullable=True),
        sa.Column("bytes", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "data_store_usage",
        *_app_id("data_store_usage"),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("last_object_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_data_store_usage")),
    )
    op.create_table(
        "data_preferences",
        *_app_id("data_preferences"),
        *_references("data_preferences", "user_id", "users"),
        sa.Column("pref_id", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "user_id", "pref_id", name=op.f("pk_data_preferences")),
    )
    op.create_table(
        "data_object_types",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        *_app_id("data_object_types"),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_object_types")),
        sa.UniqueConstraint("app_id", "name", name=op.f("uq_data_object_types_app_id_name")),
    )
    op.create_table(
        "data_object_properties",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        *_references("data_object_properties", "type_id", "data_object_types"),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("prop_type", sa.SmallInteger(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_object_properties")),
        sa.UniqueConstraint("type_id", "name", name=op.f("uq_data_object_properties_type_id_name")),
    )
    op.create_table(
        "data_objects",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        *_app_id("data_objects"),
        sa.Column("obj_id", sa.BigInteger(), nullable=False),
        *_references("data_objects", "type_id", "data_object_types"),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_objects")),
        sa.UniqueConstraint("app_id", "obj_id", name=op.f("uq_data_objects_app_id_obj_id")),
    )
    op.create_index(op.f("ix_data_objects_type_id"), "data_objects", ["type_id"])
    op.create_table(
        "data_object_values",
        *_references("data_object_values", "object_id", "data_objects"),
        *_references("data_object_values", "property_id", "data_object_properties"),
        *_value_columns(),
        sa.PrimaryKeyConstraint("object_id", "property_id", name=op.f("pk_data_object_values")),
    )
    op.create_index(
        op.f("ix_data_object_values_property_id"), "data_object_values", ["property_id"]
    )
    op.create_table(
        "data_hash_values",
        *_references("data_hash_values", "type_id", "data_object_types"),
        sa.Column("hash_key", sa.String(length=255), nullable=False),
        *_references("data_hash_values", "property_id", "data_object_properties"),
        *_value_columns(),
        sa.Column("writes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "type_id", "hash_key", "property_id", name=op.f("pk_data_hash_values")
        ),
    )
    op.create_index(op.f("ix_data_hash_values_property_id"), "data_hash_values", ["property_id"])
    op.create_table(
        "data_association_definitions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        *_app_id("data_association_definitions"),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("assoc_type", sa.SmallInteger(), nullable=False),
        sa.Column("assoc_info1", sa.Text(), nullable=False),
        sa.Column("assoc_info2", sa.Text(), nullable=False),
        sa.Column("inverse_id", ID, nullable=True),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inverse_id"],
            ["data_association_definitions.id"],
            name=op.f("fk_data_association_definitions_inverse_id_data_association_definitions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_association_definitions")),
        sa.UniqueConstraint(
            "app_id", "name", name=op.f("uq_data_association_definitions_app_id_name")
        ),
    )
    op.create_table(
        "data_associations",
        *_references("data_associations", "definition_id", "data_association_definitions"),
        sa.Column("id1", sa.BigInteger(), nullable=False),
        sa.Column("id2", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("assoc_time", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("definition_id", "id1", "id2", name=op.f("pk_data_associations")),
    )
    op.create_index(
        op.f("ix_data_associations_definition_id_id2"),
        "data_associations",
        ["definition_id", "id2"],
    )


def downgrade() -> None:
    for table in (
        "data_associations",
        "data_association_definitions",
        "data_hash_values",
        "data_object_values",
        "data_objects",
        "data_object_properties",
        "data_object_types",
        "data_preferences",
        "data_store_usage",
    ):
        op.drop_table(table)
