"""Durable data: SQLAlchemy 2 models (SQLite and PostgreSQL).

Secrets never appear in plaintext here: app and session secrets are
encrypted (``*_encrypted``), every token, code, session key and admin token
is stored as its SHA-256 hash (``*_hash``), passwords as argon2 hashes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AccessToken",
    "AdminToken",
    "ApiCallLatency",
    "ApiCallStat",
    "App",
    "AuthorizationCode",
    "Base",
    "Consent",
    "DataAssociation",
    "DataAssociationDefinition",
    "DataHashValue",
    "DataObject",
    "DataObjectProperty",
    "DataObjectType",
    "DataObjectValue",
    "DataPreference",
    "DataStoreUsage",
    "Grant",
    "PlatformSetting",
    "RefreshToken",
    "UTCDateTime",
    "User",
    "utcnow",
]

# BigInteger ids on PostgreSQL, INTEGER (rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")
Hash = String(64)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC: the only clock storage uses."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always yields aware UTC datetimes.

    PostgreSQL stores the instant; SQLite has no time zone type, so the value is
    stored as naive UTC text (which sorts and compares correctly) and made aware
    again on the way out. Naive datetimes are refused: they are a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use storage.models.utcnow()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Timestamp = UTCDateTime()


def _revoked_index() -> Index:
    """An index of ``revoked_at`` over the revoked rows only (the housekeeping
    finds them by it, :mod:`openplatform.storage.prune`): live rows, the vast
    majority, cost it nothing."""
    revoked = text("revoked_at IS NOT NULL")
    return Index(None, "revoked_at", sqlite_where=revoked, postgresql_where=revoked)


class Base(DeclarativeBase):
    # Named constraints, so later migrations can drop them (SQLite batch mode
    # cannot drop unnamed ones).
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, datetime: Timestamp}  # noqa: RUF012 (SQLAlchemy API)


class User(Base):
    """An end user (PROTOCOL §4 profile fields); ``id`` is the public ``uid``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    mobile: Mapped[str | None] = mapped_column(String(32))
    avatar_url: Mapped[str] = mapped_column(String(2000), default="")
    sex: Mapped[int] = mapped_column(Integer, default=0)  # 0 unknown, 1 male, 2 female
    birthday: Mapped[str] = mapped_column(String(10), default="")  # YYYY-MM-DD or ""
    locale: Mapped[str] = mapped_column(String(16), default="")
    profile_visibility: Mapped[str] = mapped_column(String(8), default="public")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # The generation of the user's browser sessions: a sign-in cookie of an
    # older one is void (a password change or disabling moves it on).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]


class App(Base):
    """A third-party app. ``settings`` holds the PROTOCOL §5 settings as JSON,
    validated by ``openplatform.storage.apps.AppSettings``."""

    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    api_key: Mapped[str] = mapped_column(String(64), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    icon_url: Mapped[str] = mapped_column(String(2000), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|suspended|deleted
    settings: Mapped[dict[str, Any]]
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Grant(Base):
    """A token family: everything one authorization issued — directly, or by
    refreshing what it issued. Revoking it revokes the family."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    grant_type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuthorizationCode(Base):
    """RFC 6749 §4.1.2: single use, short-lived, bound to client, redirect URI and
    PKCE challenge. ``grant_id`` is set when it is exchanged, so that a second
    use can revoke what the first issued."""

    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    code_hash: Mapped[str] = mapped_column(Hash, unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str | None] = mapped_column(Text)  # as given at /authorize, or None
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None]
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("grants.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]


class AccessToken(Base):
    """An access token and the legacy session key/secret that share its lifetime."""

    __tablename__ = "access_tokens"
    __table_args__ = (_revoked_index(),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(Hash, unique=True)
    session_key_hash: Mapped[str | None] = mapped_column(Hash, unique=True)
    session_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("grants.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class RefreshToken(Base):
    """RFC 6749 §6 with rotation (RFC 9700 §4.14): each use marks it rotated."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (_revoked_index(),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(Hash, unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime] = mapped_column(index=True)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Consent(Base):
    """The scopes a user granted an app; remembered until revoked."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "app_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AdminToken(Base):
    """Bearer tokens of the admin API (PROTOCOL §5), made with the CLI."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(Hash, unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PlatformSetting(Base):
    """A platform-wide setting shared by every server process on every host
    (e.g. the maintenance switch of PROTOCOL §5): a JSON object by key."""

    __tablename__ = "platform_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class ApiCallStat(Base):
    """Calls of one app per minute, method and error code (PROTOCOL §5,
    ``GET /admin/api/stats``). Every server process adds its own counts with
    one upsert (:mod:`openplatform.storage.call_stats`), so the rows are the
    exact sum over processes and hosts."""

    __tablename__ = "api_call_stats"
    __table_args__ = (UniqueConstraint("app_id", "minute", "method", "error_code"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    minute: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch s, a multiple of 60
    method: Mapped[str] = mapped_column(String(100))
    error_code: Mapped[int] = mapped_column(Integer)
    calls: Mapped[int] = mapped_column(BigInteger)
    latency_us_total: Mapped[int] = mapped_column(BigInteger)


# --- the data store (PROTOCOL §4 "data"; openplatform.storage.sql_data_store) ---
#
# Every row carries ``bytes``: what it was charged against the app's storage
# quota when written, so deleting it gives back exactly that.


class DataStoreUsage(Base):
    """One row per app that stored data: the bytes it uses (never above its
    ``storage_quota_bytes``) and the last object id it was given. Every write
    to the app's store locks this row first and charges it last, in the same
    transaction."""

    __tablename__ = "data_store_usage"

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger)
    last_object_id: Mapped[int] = mapped_column(BigInteger)


class DataPreference(Base):
    """A user's preference in one app (``pref_id`` 0-200, value ≤ 128 chars)."""

    __tablename__ = "data_preferences"

    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    pref_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(Integer)


class DataObjectType(Base):
    """An object type of an app; its properties, objects and hash keys go with it."""

    __tablename__ = "data_object_types"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)


class DataObjectProperty(Base):
    """A property of an object type: ``prop_type`` 1 integer, 2 string, 3 text."""

    __tablename__ = "data_object_properties"
    __table_args__ = (UniqueConstraint("type_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("data_object_types.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    prop_type: Mapped[int] = mapped_column(SmallInteger)
    bytes: Mapped[int] = mapped_column(Integer)


class DataObject(Base):
    """An object; ``obj_id`` is numbered per app (1, 2, …), so ids say nothing
    about other apps."""

    __tablename__ = "data_objects"
    __table_args__ = (UniqueConstraint("app_id", "obj_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    obj_id: Mapped[int] = mapped_column(BigInteger)
    type_id: Mapped[int] = mapped_column(
        ForeignKey("data_object_types.id", ondelete="CASCADE"), index=True
    )
    bytes: Mapped[int] = mapped_column(Integer)


class DataObjectValue(Base):
    """One property value of an object (``int_value`` or ``text_value``, by the
    property's type); an unset property has no row."""

    __tablename__ = "data_object_values"

    object_id: Mapped[int] = mapped_column(
        ForeignKey("data_objects.id", ondelete="CASCADE"), primary_key=True
    )
    property_id: Mapped[int] = mapped_column(
        ForeignKey("data_object_properties.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    int_value: Mapped[int | None] = mapped_column(BigInteger)
    text_value: Mapped[str | None] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(Integer)


class DataHashValue(Base):
    """A property value reached by a hash key of an object type. ``writes``
    counts the writes of the row: 1 right after the statement that inserted
    it, which is how an upsert tells a new row (to be charged) from an old one."""

    __tablename__ = "data_hash_values"

    type_id: Mapped[int] = mapped_column(
        ForeignKey("data_object_types.id", ondelete="CASCADE"), primary_key=True
    )
    hash_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    property_id: Mapped[int] = mapped_column(
        ForeignKey("data_object_properties.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    int_value: Mapped[int | None] = mapped_column(BigInteger)
    text_value: Mapped[str | None] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(Integer)
    writes: Mapped[int] = mapped_column(BigInteger)


class DataAssociationDefinition(Base):
    """An association of an app: ``assoc_type`` 1 one-way, 2 two-way
    symmetric, 3 two-way asymmetric (then ``inverse_id`` is the definition of
    the other direction). ``assoc_info1``/``assoc_info2`` are JSON objects."""

    __tablename__ = "data_association_definitions"
    __table_args__ = (UniqueConstraint("app_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(32))
    assoc_type: Mapped[int] = mapped_column(SmallInteger)
    assoc_info1: Mapped[str] = mapped_column(Text)
    assoc_info2: Mapped[str] = mapped_column(Text)
    inverse_id: Mapped[int | None] = mapped_column(
        ForeignKey("data_association_definitions.id", ondelete="SET NULL")
    )
    bytes: Mapped[int] = mapped_column(Integer)


class DataAssociation(Base):
    """``id1`` is associated with ``id2`` (any 64-bit ids: objects, users…)."""

    __tablename__ = "data_associations"
    __table_args__ = (Index(None, "definition_id", "id2"),)

    definition_id: Mapped[int] = mapped_column(
        ForeignKey("data_association_definitions.id", ondelete="CASCADE"), primary_key=True
    )
    id1: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    id2: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    assoc_time: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(Integer)


class ApiCallLatency(Base):
    """How many calls of one app to one method in one minute took a latency in
    ``bucket`` (an index into ``storage.call_stats.LATENCY_BOUNDS_US``): a
    fixed-bucket histogram that processes merge by adding counts, from which
    p50/p95/p99 are computed."""

    __tablename__ = "api_call_latency"
    __table_args__ = (UniqueConstraint("app_id", "minute", "method", "bucket"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    minute: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch s, a multiple of 60
    method: Mapped[str] = mapped_column(String(100))
    bucket: Mapped[int] = mapped_column(Integer)
    calls: Mapped[int] = mapped_column(BigInteger)
