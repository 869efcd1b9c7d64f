"""Apps and their settings (PROTOCOL §5): validation, defaults, and storage.

:class:`AppSettings` is the one definition of what an app may configure; the
admin API, the console and the CLI all validate through
:meth:`AppSettings.from_mapping`. The app secret is stored encrypted
(:class:`~openplatform.storage.crypto.SecretBox`), never in plaintext.
"""

from __future__ import annotations

import builtins
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from sqlalchemy import Row, bindparam, delete, select

from openplatform.config import IPNetwork
from openplatform.errors import Code
from openplatform.json_schema import Array, Boolean, Integer, Object, Shape, Text, invalid
from openplatform.storage.changes import AppChanges
from openplatform.storage.crypto import SecretBox, new_secret
from openplatform.storage.engine import Sessions
from openplatform.storage.errors import NotFoundError
from openplatform.storage.models import (
    AccessToken,
    App,
    AuthorizationCode,
    Consent,
    DataAssociationDefinition,
    DataObject,
    DataObjectType,
    DataPreference,
    DataStoreUsage,
    Grant,
    RefreshToken,
    utcnow,
)

__all__ = [
    "CONFIDENTIAL_GRANTS",
    "KNOWN_GRANTS",
    "KNOWN_SCOPES",
    "PUBLIC_GRANTS",
    "SETTINGS",
    "SETTINGS_PATCH",
    "AppRecord",
    "AppRepository",
    "AppSettings",
    "AppStatus",
    "RateLimit",
    "RateLimitSubject",
]

KNOWN_SCOPES: tuple[str, ...] = ("basic", "email", "mobile", "data")
KNOWN_GRANTS: tuple[str, ...] = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
)
CONFIDENTIAL_GRANTS: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials")
PUBLIC_GRANTS: tuple[str, ...] = ("authorization_code", "refresh_token")

AppStatus = Literal["active", "suspended", "deleted"]
RateLimitSubject = Literal["app", "user", "ip"]

MAX_LIST_ITEMS = 100
MAX_RATE_LIMITS = 20
MAX_URL_LENGTH = 2000
# A method name or a glob over method names: "*", "users.getInfo", "data.*".
_METHOD_PATTERN = r"[A-Za-z0-9_.*?\[\]!-]{1,100}"
# A Referer host pattern: "example.com" or "*.example.com" (PROTOCOL §3.3 check 7).
_HOST_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_REFERER_PATTERN = re.compile(rf"^(\*\.)?{_HOST_LABEL}(\.{_HOST_LABEL})*$")
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One rate limit: ``limit`` calls per ``window_s`` seconds, counted per
    ``per`` (the app, each user of the app, each client IP), for the methods
    matching ``methods`` (``"*"``, an exact name, or a glob such as ``"data.*"``)."""

    methods: str
    per: RateLimitSubject
    limit: int
    window_s: int

    def to_json(self) -> dict[str, str | int]:
        return {
            "methods": self.methods,
            "per": self.per,
            "limit": self.limit,
            "window_s": self.window_s,
        }


DEFAULT_RATE_LIMITS = (RateLimit(methods="*", per="app", limit=10_000, window_s=60),)


def _http_url(path: str, text: str) -> str:
    if text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid(path, "must be an http(s) URL")
    return text


# Schemes a browser would execute or read locally instead of handing to an app.
_DANGEROUS_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "about", "blob"})


def _redirect_uri(path: str, value: str) -> str:
    """RFC 6749 §3.1.2: absolute, no fragment. Native apps may use a private-use
    scheme (RFC 8252 §7.1); http(s) URIs need a host."""
    if not value or any(c.isspace() for c in value):
        raise invalid(path, f"must be an absolute URI of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise invalid(path, "is not a valid URI") from None
    if not parts.scheme or not _URI_SCHEME.match(parts.scheme):
        raise invalid(path, "must be an absolute URI (with a scheme)")
    if parts.fragment or "#" in value:
        raise invalid(path, "must not contain a fragment")
    if parts.scheme.lower() in _DANGEROUS_SCHEMES:
        raise invalid(path, f"cannot be a redirect URI: the {parts.scheme}: scheme")
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise invalid(path, "must name a host")
    return value


def _ip_entry(path: str, value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise invalid(path, f"is not an IP address or CIDR: {value!r}", Code.INVALID_IP) from None
    return value


def _referer_pattern(path: str, value: str) -> str:
    pattern = value.lower()
    if not _REFERER_PATTERN.match(pattern) or len(pattern) > 253:
        raise invalid(path, f"must be a host name or *.domain pattern, got {value!r}")
    return pattern


def _list(items: Shape, description: str, max_items: int = MAX_LIST_ITEMS) -> Array:
    return Array(items=items, max_items=max_items, dedupe=True, description=description)


RATE_LIMIT = Object(
    title="RateLimit",
    description="limit calls per window_s seconds, counted per app, per user of the app "
    "or per client IP, for the methods matching methods",
    properties={
        "methods": Text(
            max_length=100,
            pattern=_METHOD_PATTERN,
            pattern_hint="must be '*', a method name or a glob such as 'data.*'",
            default="*",
            description="'*', an exact method name or a glob such as 'data.*'",
        ),
        "per": Text(max_length=4, enum=("app", "user", "ip"), default="app"),
        "limit": Integer(minimum=1, maximum=1_000_000_000),
        "window_s": Integer(minimum=1, maximum=31 * 86_400, description="seconds"),
    },
    required=("limit", "window_s"),
    fill_defaults=True,
)

# Every setting of PROTOCOL §5, as the admin API, the console and the CLI read it.
SETTINGS = Object(
    title="AppSettings",
    description="Rules between settings: grants default by client type (confidential: "
    "authorization_code, refresh_token, client_credentials; public: the first two); a "
    "public app cannot use client_credentials and always requires PKCE.",
    required=("name",),
    properties={
        "name": Text(max_length=200, not_blank=True, strip=True),
        "description": Text(max_length=2000, default=""),
        "icon_url": Text(
            max_length=MAX_URL_LENGTH, refine=_http_url, default="", description="an http(s) URL"
        ),
        "redirect_uris": _list(
            Text(max_length=MAX_URL_LENGTH, refine=_redirect_uri),
            "absolute URIs without fragment (RFC 6749 §3.1.2); http(s) with a host, or a "
            "private-use scheme (RFC 8252 §7.1); matched exactly, loopback on any port",
        ),
        "public": Boolean(default=False, description="a client that keeps no secret"),
        "scopes": _list(Text(max_length=16, enum=KNOWN_SCOPES), "scopes the app may request"),
        "grants": _list(
            Text(max_length=32, enum=KNOWN_GRANTS),
            "OAuth grants the app may use (password only on request)",
        ),
        "ip_allowlist": _list(
            Text(max_length=64, strip=True, refine=_ip_entry),
            "IPs and CIDRs, v4 and v6, allowed to call the open API (empty: all); "
            "a malformed one is 114",
        ),
        "referer_allowlist": _list(
            Text(max_length=253, strip=True, refine=_referer_pattern),
            "Referer hosts: example.com, or *.example.com for any subdomain",
        ),
        "allow_missing_referer": Boolean(default=False),
        "rate_limits": Array(
            items=RATE_LIMIT, max_items=MAX_RATE_LIMITS, description="every matching limit applies"
        ),
        "require_signature": Boolean(default=False),
        "legacy_http_200": Boolean(default=False, description="every API error with HTTP 200"),
        "status": Text(max_length=16, enum=("active", "suspended"), default="active"),
        "access_token_ttl_s": Integer(
            minimum=1, maximum=30 * 86_400, unit="s (30 days)", default=3600
        ),
        "refresh_token_ttl_s": Integer(
            minimum=1, maximum=366 * 86_400, unit="s (366 days)", default=2_592_000
        ),
        "storage_quota_bytes": Integer(minimum=0, maximum=1 << 40, default=10 * 1024 * 1024),
        "require_pkce": Boolean(default=True),
        "require_call_id": Boolean(default=False),
        "refresh_reuse_grace_s": Integer(minimum=0, maximum=3600, default=10),
    },
)
SETTINGS_PATCH = SETTINGS.partial("AppSettingsPatch")


def _field_value(key: str, value: object) -> object:
    """A checked JSON value as the :class:`AppSettings` field holds it."""
    if key == "rate_limits":
        assert isinstance(value, list)
        return tuple(RateLimit(**limit) for limit in value)
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(frozen=True, slots=True)
class AppSettings:
    """Every setting of an app (PROTOCOL §5) with its default.

    ``grants`` defaults by client type: confidential apps get
    ``authorization_code``, ``refresh_token`` and ``client_credentials``;
    public apps the first two (``password`` only on request). Public apps
    always require PKCE.
    """

    name: str
    description: str = ""
    icon_url: str = ""
    redirect_uris: tuple[str, ...] = ()
    public: bool = False
    scopes: tuple[str, ...] = ("basic",)
    grants: tuple[str, ...] = CONFIDENTIAL_GRANTS
    ip_allowlist: tuple[str, ...] = ()
    referer_allowlist: tuple[str, ...] = ()
    allow_missing_referer: bool = False
    rate_limits: tuple[RateLimit, ...] = DEFAULT_RATE_LIMITS
    require_signature: bool = False
    legacy_http_200: bool = False
    status: Literal["active", "suspended"] = "active"
    access_token_ttl_s: int = 3600
    refresh_token_ttl_s: int = 2_592_000
    storage_quota_bytes: int = 10 * 1024 * 1024
    require_pkce: bool = True
    require_call_id: bool = False
    refresh_reuse_grace_s: int = 10
    _networks: tuple[IPNetwork, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = tuple(ipaddress.ip_network(item, strict=False) for item in self.ip_allowlist)
        object.__setattr__(self, "_networks", networks)

    @property
    def ip_networks(self) -> tuple[IPNetwork, ...]:
        """``ip_allowlist`` parsed (empty: every address is allowed)."""
        return self._networks

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], base: AppSettings | None = None
    ) -> AppSettings:
        """Validate a full (``base`` None: ``name`` required) or partial (PATCH,
        applied over ``base``) JSON object of settings. Raises ``ApiError`` 100
        naming the field, or 114 for a malformed IP/CIDR; unknown keys are 100."""
        checked = (SETTINGS if base is None else SETTINGS_PATCH).check(data, "")
        current = base or cls(name="")
        changes = {key: _field_value(key, value) for key, value in checked.items()}
        merged = replace(current, **changes)  # type: ignore[arg-type]
        return _reconcile(merged, current, data, fresh=base is None)

    def to_json(self) -> dict[str, object]:
        """The settings as a JSON object (the shape :meth:`from_mapping` reads)."""
        return {
            "name": self.name,
            "description": self.description,
            "icon_url": self.icon_url,
            "redirect_uris": list(self.redirect_uris),
            "public": self.public,
            "scopes": list(self.scopes),
            "grants": list(self.grants),
            "ip_allowlist": list(self.ip_allowlist),
            "referer_allowlist": list(self.referer_allowlist),
            "allow_missing_referer": self.allow_missing_referer,
            "rate_limits": [limit.to_json() for limit in self.rate_limits],
            "require_signature": self.require_signature,
            "legacy_http_200": self.legacy_http_200,
            "status": self.status,
            "access_token_ttl_s": self.access_token_ttl_s,
            "refresh_token_ttl_s": self.refresh_token_ttl_s,
            "storage_quota_bytes": self.storage_quota_bytes,
            "require_pkce": self.require_pkce,
            "require_call_id": self.require_call_id,
            "refresh_reuse_grace_s": self.refresh_reuse_grace_s,
        }


def _reconcile(
    merged: AppSettings, before: AppSettings, data: Mapping[str, object], *, fresh: bool
) -> AppSettings:
    """Rules between settings: grant defaults follow the client type, public
    clients cannot use ``client_credentials`` and always require PKCE."""
    if "grants" not in data and (fresh or merged.public != before.public):
        default_before = PUBLIC_GRANTS if before.public else CONFIDENTIAL_GRANTS
        if fresh or before.grants == default_before:
            grants = PUBLIC_GRANTS if merged.public else CONFIDENTIAL_GRANTS
        else:
            grants = tuple(
                g for g in merged.grants if not merged.public or g != "client_credentials"
            )
        merged = replace(merged, grants=grants)
    if merged.public:
        if "client_credentials" in merged.grants:
            raise invalid(
                "grants", "cannot hold client_credentials for a public app (it keeps no secret)"
            )
        if data.get("require_pkce") is False:
            raise invalid("require_pkce", "cannot be false: public apps always require PKCE")
        merged = replace(merged, require_pkce=True)
    return merged


def _settings_from_row(stored: Mapping[str, object]) -> AppSettings:
    """Settings as stored; validated again, so a row from an older version with
    fewer keys gets today's defaults."""
    known = {f.name for f in fields(AppSettings) if not f.name.startswith("_")}
    data = {key: value for key, value in stored.items() if key in known}
    return AppSettings.from_mapping(data)


@dataclass(frozen=True, slots=True)
class AppRecord:
    """An app as stored. ``status`` is ``deleted`` for a deleted app (callers
    answer 900); ``secret`` is decrypted."""

    id: int
    api_key: str
    name: str
    description: str
    icon_url: str
    status: AppStatus
    settings: AppSettings
    secret: str = field(repr=False)
    created_at: datetime
    updated_at: datetime
    owner_id: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"


_MAX_RECORDS = 10_000


def _live(row: App | None, app_id: int) -> App:
    if row is None or row.status == "deleted":
        raise NotFoundError(f"no app {app_id}")
    return row


def new_api_key() -> str:
    """A public client identifier: ``ak_`` and 24 hex digits (96 random bits;
    it is not a secret, only unique and unguessable enough not to enumerate)."""
    return "ak_" + secrets.token_hex(12)


_DATA_STORE = (
    DataStoreUsage,
    DataPreference,
    DataAssociationDefinition,
    DataObject,
    DataObjectType,
)

_APP_COLUMNS = (
    App.id,
    App.api_key,
    App.name,
    App.description,
    App.icon_url,
    App.status,
    App.settings,
    App.secret_encrypted,
    App.created_at,
    App.updated_at,
    App.owner_id,
)
_GET_APP = select(*_APP_COLUMNS).where(App.id == bindparam("app_id"))
_GET_APP_BY_KEY = select(*_APP_COLUMNS).where(App.api_key == bindparam("api_key"))


class AppRepository:
    """Apps (PROTOCOL §5 admin API and console)."""

    def __init__(
        self, sessions: Sessions, box: SecretBox, changes: AppChanges | None = None
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._changes = changes or AppChanges()
        # Rows already turned into records: validating the settings and
        # decrypting the secret cost several times the SELECT. Keyed by what
        # every change moves on (updated_at) and the ciphertext itself.
        self._records: dict[tuple[int, datetime, str, str], AppRecord] = {}

    def _record(self, row: App | Row[*tuple[Any, ...]]) -> AppRecord:
        key = (row.id, row.updated_at, row.status, row.secret_encrypted)
        record = self._records.get(key)
        if record is None or record.api_key != row.api_key:
            if len(self._records) >= _MAX_RECORDS:
                self._records.clear()
            record = self._records[key] = self._build_record(row)
        return record

    def _build_record(self, row: App | Row[*tuple[Any, ...]]) -> AppRecord:
        return AppRecord(
            id=row.id,
            api_key=row.api_key,
            name=row.name,
            description=row.description,
            icon_url=row.icon_url,
            status=cast(AppStatus, row.status),
            settings=_settings_from_row(row.settings),
            secret=self._box.decrypt(row.secret_encrypted),
            created_at=row.created_at,
            updated_at=row.updated_at,
            owner_id=row.owner_id,
        )

    async def create(self, settings: AppSettings, owner_id: int | None = None) -> AppRecord:
        """Register an app with a new ``api_key`` and a random 256-bit secret."""
        now = utcnow()
        row = App(
            api_key=new_api_key(),
            secret_encrypted=self._box.encrypt(new_secret()),
            name=settings.name,
            description=settings.description,
            icon_url=settings.icon_url,
            status=settings.status,
            settings=settings.to_json(),
            owner_id=owner_id,
            created_at=now,
            updated_at=now,
        )
        async with self._sessions.write() as session:
            session.add(row)
            await session.flush()
        return self._record(row)

    async def get(self, app_id: int) -> AppRecord | None:
        row = await self._sessions.first(_GET_APP, {"app_id": app_id})
        return None if row is None else self._record(row)

    async def get_by_api_key(self, api_key: str) -> AppRecord | None:
        """The app of ``api_key`` (any status), or None — also for a value no
        key can be (PostgreSQL text cannot even hold a NUL to compare)."""
        if not api_key or len(api_key) > 64 or "\x00" in api_key:
            return None
        row = await self._sessions.first(_GET_APP_BY_KEY, {"api_key": api_key})
        return None if row is None else self._record(row)

    async def list(
        self, owner_id: int | None = None, include_deleted: bool = False
    ) -> builtins.list[AppRecord]:
        """Apps by id (an owner's only, when given); deleted ones only on request."""
        query = select(App).order_by(App.id)
        if owner_id is not None:
            query = query.where(App.owner_id == owner_id)
        if not include_deleted:
            query = query.where(App.status != "deleted")
        async with self._sessions.read() as session:
            rows = (await session.scalars(query)).all()
        return [self._record(row) for row in rows]

    async def page(
        self, *, after: int = 0, limit: int = 50, owner_id: int | None = None
    ) -> builtins.list[AppRecord]:
        """Up to ``limit`` apps with ids above ``after``, by id (keyset
        pagination: the last id is the next page's ``after``); deleted ones
        never; an owner's only, when given."""
        query = select(App).where(App.id > after, App.status != "deleted")
        if owner_id is not None:
            query = query.where(App.owner_id == owner_id)
        async with self._sessions.read() as session:
            rows = (await session.scalars(query.order_by(App.id).limit(limit))).all()
        return [self._record(row) for row in rows]

    async def update(self, app_id: int, patch: Mapping[str, object]) -> AppRecord:
        """Apply a partial settings object (validated as by
        :meth:`AppSettings.from_mapping`). Raises ``NotFoundError`` for an
        unknown or deleted app."""
        async with self._sessions.write() as session:
            row = _live(await session.get(App, app_id, with_for_update=True), app_id)
            settings = AppSettings.from_mapping(patch, base=_settings_from_row(row.settings))
            row.settings = settings.to_json()
            row.name = settings.name
            row.description = settings.description
            row.icon_url = settings.icon_url
            row.status = settings.status
            row.updated_at = utcnow()
        await self._changes.publish([app_id])
        return self._record(row)

    async def rotate_secret(self, app_id: int) -> str:
        """A new secret replaces the old one, which stops working at once."""
        secret = new_secret()
        async with self._sessions.write() as session:
            row = _live(await session.get(App, app_id, with_for_update=True), app_id)
            row.secret_encrypted = self._box.encrypt(secret)
            row.updated_at = utcnow()
        await self._changes.publish([app_id])
        return secret

    async def delete(self, app_id: int) -> None:
        """Mark the app deleted (its ``api_key`` then answers 900) and delete every
        code, token, grant and consent of it, and everything in its data store,
        in one transaction (its tokens then answer 110: they no longer exist)."""
        async with self._sessions.write() as session:
            row = _live(await session.get(App, app_id, with_for_update=True), app_id)
            for model in (AuthorizationCode, AccessToken, RefreshToken, Grant, Consent):
                await session.execute(delete(model).where(model.app_id == app_id))
            # The data store's usage row first: writes of the app in flight lock it
            # first too. Types take their properties, objects and hash values
            # along, definitions their associations.
            for data in _DATA_STORE:
                await session.execute(delete(data).where(data.app_id == app_id))
            row.status = "deleted"
            row.updated_at = utcnow()
        await self._changes.publish([app_id])
