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
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AccessToken",
    "AdminToken",
    "ApiCallStat",
    "App",
    "AuthorizationCode",
    "Base",
    "Consent",
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
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("grants.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]


class AccessToken(Base):
    """An access token and the legacy session key/secret that share its lifetime."""

    __tablename__ = "access_tokens"

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
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class RefreshToken(Base):
    """RFC 6749 §6 with rotation (RFC 9700 §4.14): each use marks it rotated."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(Hash, unique=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime]
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
    minute: Mapped[int] = mapped_column(BigInteger)  # epoch seconds, a multiple of 60
    method: Mapped[str] = mapped_column(String(100))
    error_code: Mapped[int] = mapped_column(Integer)
    calls: Mapped[int] = mapped_column(BigInteger)
    latency_us_total: Mapped[int] = mapped_column(BigInteger)
