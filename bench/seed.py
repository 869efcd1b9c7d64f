"""Seeded databases for the bench: apps, users and user access tokens.

The schema is the platform's own (``openplatform db upgrade``); rows are what
``openplatform.storage`` would write: tokens stored as their SHA-256
(``hash_token``), app secrets encrypted with the server's key
(``SecretBox``), settings as ``AppSettings.to_json()``, times in the form
the models' ``UTCDateTime`` type stores them. Token ``n`` belongs to app
``n % apps`` and user ``n % users``, so a request can pair any token with its
app's ``api_key`` and secret. Users get no password (nobody signs in during
the bench) and tokens no grant row (nothing on the measured paths reads it).

Rows go in with bulk inserts in one transaction: ``executemany`` on the
SQLite file (1M tokens in about 15 s), ``COPY`` on PostgreSQL. Only a sample
of the plaintext tokens is kept (``SAMPLE_TOKENS``, spread over the whole
table): the bench's requests rotate over those.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy.dialects import sqlite

from openplatform.storage.apps import AppSettings, RateLimit, new_api_key
from openplatform.storage.crypto import SecretBox, hash_token, new_secret, new_token
from openplatform.storage.migrate import sqlite_file, upgrade_async
from openplatform.storage.models import Timestamp, utcnow

__all__ = [
    "SAMPLE_TOKENS",
    "TIERS",
    "AppCredentials",
    "Seeded",
    "Tier",
    "TokenCredentials",
    "seed",
]

SAMPLE_TOKENS = 100_000
TOKEN_TTL = timedelta(days=2)
# Every seeded app has one rate limit that a bench cannot exhaust: the check
# (PROTOCOL §3.3 check 13) runs on every call, it just never refuses.
RATE_LIMITS = (RateLimit(methods="*", per="app", limit=1_000_000_000, window_s=60),)
USER_COLUMNS = (
    "id",
    "username",
    "password_hash",
    "display_name",
    "email",
    "avatar_url",
    "sex",
    "birthday",
    "locale",
    "profile_visibility",
    "disabled",
    "created_at",
)
APP_COLUMNS = (
    "id",
    "api_key",
    "secret_encrypted",
    "name",
    "description",
    "icon_url",
    "status",
    "settings",
    "created_at",
    "updated_at",
)
TOKEN_COLUMNS = ("token_hash", "app_id", "user_id", "scope", "expires_at", "created_at")


@dataclass(frozen=True)
class Tier:
    name: str
    apps: int
    users: int
    tokens: int


TIERS = {
    "1k": Tier("1k", apps=1_000, users=1_000, tokens=1_000),
    "1M": Tier("1M", apps=100_000, users=100_000, tokens=1_000_000),
}


@dataclass(frozen=True)
class AppCredentials:
    api_key: str
    secret: str


@dataclass(frozen=True)
class TokenCredentials:
    """An access token with the app it belongs to."""

    app: AppCredentials
    access_token: str


@dataclass(frozen=True)
class Seeded:
    apps: list[AppCredentials]
    tokens: list[TokenCredentials]  # a shuffled sample, at most SAMPLE_TOKENS


@dataclass(frozen=True)
class _Rows:
    table: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]  # times as aware datetimes, JSON as text


async def seed(url: str, box: SecretBox, tier: Tier) -> Seeded:
    """Migrate the empty database at ``url`` to head and fill it as ``tier`` says."""
    await upgrade_async(url)
    now = utcnow()
    expires = now + TOKEN_TTL
    rng = random.Random(tier.name)
    apps = [AppCredentials(new_api_key(), new_secret()) for _ in range(tier.apps)]
    kept = set(rng.sample(range(tier.tokens), min(SAMPLE_TOKENS, tier.tokens)))
    tokens: list[TokenCredentials] = []
    token_rows: list[tuple[object, ...]] = []
    for n in range(tier.tokens):
        token, app_number, uid = new_token(), n % tier.apps, n % tier.users + 1
        token_rows.append((hash_token(token), app_number + 1, uid, "basic", expires, now))
        if n in kept:
            tokens.append(TokenCredentials(apps[app_number], token))
    rng.shuffle(tokens)
    tables = [
        _Rows("users", USER_COLUMNS, [_user_row(uid, now) for uid in range(1, tier.users + 1)]),
        _Rows("apps", APP_COLUMNS, [_app_row(n, app, box, now) for n, app in enumerate(apps)]),
        _Rows("access_tokens", TOKEN_COLUMNS, token_rows),
    ]
    path = sqlite_file(url)
    if path is not None:
        await asyncio.to_thread(_write_sqlite, str(path), tables)
    else:
        await _write_postgresql(url, tables)
    return Seeded(apps, tokens)


def _user_row(uid: int, now: datetime) -> tuple[object, ...]:
    return (
        uid,
        f"user{uid}",
        "!",  # no password hash matches: nobody can sign in as a bench user
        f"User {uid}",
        f"user{uid}@example.com",
        "",
        0,
        "",
        "en",
        "public",
        False,
        now,
    )


def _app_row(number: int, app: AppCredentials, box: SecretBox, now: datetime) -> tuple[object, ...]:
    settings = AppSettings(name=f"bench app {number}", rate_limits=RATE_LIMITS)
    return (
        number + 1,
        app.api_key,
        box.encrypt(app.secret),
        settings.name,
        "",
        "",
        "active",
        json.dumps(settings.to_json()),
        now,
        now,
    )


def _sqlite_time() -> Callable[[datetime], object]:
    """A time as the models store it on SQLite (``UTCDateTime``, then SQLite's
    ``DATETIME`` text), computed once per distinct value."""
    dialect = sqlite.dialect()
    to_text = sqlite.DATETIME().bind_processor(dialect)
    assert to_text is not None
    stored: dict[datetime, object] = {}

    def convert(value: datetime) -> object:
        if value not in stored:
            stored[value] = to_text(Timestamp.process_bind_param(value, dialect))
        return stored[value]

    return convert


def _write_sqlite(path: str, tables: list[_Rows]) -> None:
    stored_time = _sqlite_time()
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA cache_size=-262144")  # 256 MiB: the indexes stay in memory
        connection.execute("BEGIN")
        for table in tables:
            placeholders = ", ".join("?" for _ in table.columns)
            connection.executemany(
                f"INSERT INTO {table.table} ({', '.join(table.columns)}) VALUES ({placeholders})",
                (
                    tuple(stored_time(v) if isinstance(v, datetime) else v for v in row)
                    for row in table.rows
                ),
            )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def _write_postgresql(url: str, tables: list[_Rows]) -> None:
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            for table in tables:
                await connection.copy_records_to_table(
                    table.table, records=table.rows, columns=table.columns
                )
            for table in ("users", "apps"):  # explicit ids: move the sequences past them
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
    finally:
        await connection.close()
