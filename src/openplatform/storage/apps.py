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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from sqlalchemy import Row, bindparam, delete, select

from openplatform.config import IPNetwork
from openplatform.errors import ApiError, Code
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
_METHOD_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,100}$")
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


def _invalid(detail: str) -> ApiError:
    return ApiError(Code.INVALID_PARAMETER, detail)


def _str(name: str, value: object, *, max_length: int, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string")
    if not allow_empty and not value.strip():
        raise _invalid(f"{name} must not be empty")
    if len(value) > max_length:
        raise _invalid(f"{name} must be at most {max_length} characters")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be true or false")
    return value


def _int(name: str, value: object, *, minimum: int, maximum: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be a whole number")
    if not minimum <= value <= maximum:
        raise _invalid(f"{name} must be between {minimum} and {maximum}{unit}, got {value}")
    return value


def _str_list(name: str, value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _invalid(f"{name} must be a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise _invalid(f"{name} may hold at most {MAX_LIST_ITEMS} items")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _invalid(f"{name}[{index}] must be a string")
        items.append(item)
    return items


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _http_url(name: str, value: object) -> str:
    text = _str(name, value, max_length=MAX_URL_LENGTH)
    if text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _invalid(f"{name} must be an http(s) URL")
    return text


# Schemes a browser would execute or read locally instead of handing to an app.
_DANGEROUS_SCHEMES = frozenset({"javascript", "data", "vbscript", "file", "about", "blob"})


def _redirect_uri(name: str, value: str) -> str:
    """RFC 6749 §3.1.2: absolute, no fragment. Native apps may use a private-use
    scheme (RFC 8252 §7.1); http(s) URIs need a host."""
    if not value or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
        raise _invalid(f"{name} must be an absolute URI of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _invalid(f"{name} is not a valid URI") from None
    if not parts.scheme or not _URI_SCHEME.match(parts.scheme):
        raise _invalid(f"{name} must be an absolute URI (with a scheme)")
    if parts.fragment or "#" in value:
        raise _invalid(f"{name} must not contain a fragment")
    if parts.scheme.lower() in _DANGEROUS_SCHEMES:
        raise _invalid(f"{name}: the {parts.scheme}: scheme cannot be a redirect URI")
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise _invalid(f"{name} must name a host")
    return value


def _ip_entry(name: str, value: str) -> str:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ApiError(Code.INVALID_IP, f"{name}: {value!r} is not an IP address or CIDR") from None
    return value.strip()


def _referer_pattern(name: str, value: str) -> str:
    pattern = value.strip().lower()
    if not _REFERER_PATTERN.match(pattern) or len(pattern) > 253:
        raise _invalid(f"{name} must be a host name or *.domain pattern, got {value!r}")
    return pattern


def _rate_limit(name: str, value: object) -> RateLimit:
    if not isinstance(value, Mapping):
        raise _invalid(f"{name} must be an object with methods, per, limit, window_s")
    unknown = sorted(set(value) - {"methods", "per", "limit", "window_s"})
    if unknown:
        raise _invalid(f"{name}: unknown field {unknown[0]!r}")
    methods = value.get("methods", "*")
    if not isinstance(methods, str) or not _METHOD_PATTERN.match(methods):
        raise _invalid(f"{name}.methods must be '*', a method name or a glob such as 'data.*'")
    per = value.get("per", "app")
    if per not in ("app", "user", "ip"):
        raise _invalid(f"{name}.per must be 'app', 'user' or 'ip'")
    for required in ("limit", "window_s"):
        if required not in value:
            raise _invalid(f"{name}.{required} is required")
    return RateLimit(
        methods=methods,
        per=cast(RateLimitSubject, per),
        limit=_int(f"{name}.limit", value["limit"], minimum=1, maximum=1_000_000_000),
        window_s=_int(f"{name}.window_s", value["window_s"], minimum=1, maximum=31 * 86_400),
    )


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
        if not isinstance(data, Mapping):
            raise _invalid("app settings must be a JSON object")
        known = {f.name for f in fields(cls) if not f.name.startswith("_")}
        unknown = sorted(str(key) for key in data if key not in known)
        if unknown:
            raise _invalid(f"unknown app setting {unknown[0]!r}")
        if base is None and "name" not in data:
            raise _invalid("name is required")
        current = base or cls(name="")
        changes: dict[str, object] = {}
        for key, value in data.items():
            changes[key] = _validate(key, value)
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


def _known_items(key: str, value: object, known: Sequence[str], what: str) -> tuple[str, ...]:
    """A list of names, each one of ``known``."""
    items = _str_list(key, value)
    for i, item in enumerate(items):
        if item not in known:
            raise _invalid(f"{key}[{i}]: unknown {what} {item!r} (known: {', '.join(known)})")
    return _unique(items)


def _validate(key: str, value: object) -> object:
    """One setting, checked and normalized."""
    if key == "name":
        return _str(key, value, max_length=200, allow_empty=False).strip()
    if key == "description":
        return _str(key, value, max_length=2000)
    if key == "icon_url":
        return _http_url(key, value)
    if key == "redirect_uris":
        items = _str_list(key, value)
        return _unique([_redirect_uri(f"{key}[{i}]", item) for i, item in enumerate(items)])
    if key == "scopes":
        return _known_items(key, value, KNOWN_SCOPES, "scope")
    if key == "grants":
        return _known_items(key, value, KNOWN_GRANTS, "grant")
    if key == "ip_allowlist":
        items = _str_list(key, value)
        return _unique([_ip_entry(f"{key}[{i}]", item) for i, item in enumerate(items)])
    if key == "referer_allowlist":
        items = _str_list(key, value)
        return _unique([_referer_pattern(f"{key}[{i}]", item) for i, item in enumerate(items)])
    if key == "rate_limits":
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise _invalid(f"{key} must be a list of objects")
        if len(value) > MAX_RATE_LIMITS:
            raise _invalid(f"{key} may hold at most {MAX_RATE_LIMITS} limits")
        return tuple(_rate_limit(f"{key}[{i}]", item) for i, item in enumerate(value))
    if key == "status":
        if value not in ("active", "suspended"):
            raise _invalid("status must be 'active' or 'suspended'")
        return value
    if key == "access_token_ttl_s":  # seconds are allowed: developers test refresh logic
        return _int(key, value, minimum=1, maximum=30 * 86_400, unit="s (30 days)")
    if key == "refresh_token_ttl_s":
        return _int(key, value, minimum=1, maximum=366 * 86_400, unit="s (366 days)")
    if key == "storage_quota_bytes":
        return _int(key, value, minimum=0, maximum=1 << 40)
    if key == "refresh_reuse_grace_s":
        return _int(key, value, minimum=0, maximum=3600)
    # The remaining settings are flags.
    return _bool(key, value)


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
            raise _invalid(
                "grants: a public app cannot use client_credentials (it keeps no secret)"
            )
        if data.get("require_pkce") is False:
            raise _invalid("require_pkce: public apps always require PKCE")
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
