"""A platform of several server processes on one database and one shared
cache, driven over real HTTP — for the two-process exactness tests and the
soak (``scripts/soak``).

A fresh PostgreSQL database is made on the shared server for each platform
and dropped afterwards; the schema, apps, users and an admin token are seeded
in-process before the servers start.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from openplatform.gateway.signature import sign
from tests.conftest import run_in_thread
from tests.server_process import serve_process
from tests.services import PG_HOST, PG_PORT

__all__ = [
    "App",
    "Seeded",
    "admin_connect",
    "children",
    "create_database",
    "drop_database",
    "seed",
    "server_env",
    "serving",
    "signed",
]

_distinct = itertools.count()


@dataclass(frozen=True)
class App:
    app_id: int
    api_key: str
    secret: str


@dataclass(frozen=True)
class Seeded:
    admin_token: str
    apps: dict[str, App]


async def admin_connect(database: str = "postgres") -> Any:
    """An asyncpg connection as ``postgres`` to ``database`` of the shared server."""
    import asyncpg

    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database=database)


async def _admin_sql(sql: str) -> None:
    conn = await admin_connect()
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(prefix: str) -> tuple[str, str]:
    """A new empty database on the shared PostgreSQL server: (name, URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    run_in_thread(_admin_sql(f'CREATE DATABASE "{name}"'))
    return name, f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    run_in_thread(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def seed(
    database_url: str,
    secret_key: str,
    apps: Mapping[str, Mapping[str, object]],
    users: Sequence[tuple[str, str]] = (),
    first_app_id: int | None = None,
) -> Seeded:
    """Migrate ``database_url`` and make ``apps`` (name → settings), ``users``
    (username, password) and an admin token. ``first_app_id`` (PostgreSQL)
    numbers the apps from there: a shared Redis (Cluster) then holds no state
    of another run's app with the same id."""
    from openplatform.storage.apps import AppSettings
    from openplatform.storage.crypto import SecretBox
    from openplatform.storage.database import Database
    from openplatform.storage.migrate import upgrade_async

    await upgrade_async(database_url)
    if first_app_id is not None:
        conn = await admin_connect(database_url.rsplit("/", 1)[1])
        try:
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('apps', 'id'), $1, false)", first_app_id
            )
        finally:
            await conn.close()
    async with Database(database_url, SecretBox(secret_key)) as db:
        made = {}
        for name, settings in apps.items():
            record = await db.apps.create(AppSettings.from_mapping({"name": name, **settings}))
            made[name] = App(record.id, record.api_key, record.secret)
        for username, password in users:
            await db.users.create(username, password)
        token = await db.admin_tokens.create("two-process platform")
    return Seeded(token, made)


def server_env(
    database_url: str, cache_url: str, data_dir: Path, secret_key: str
) -> dict[str, str]:
    env = {
        **os.environ,
        "OPENPLATFORM_DATABASE_URL": database_url,
        "OPENPLATFORM_CACHE_URL": cache_url,
        "OPENPLATFORM_DATA_DIR": str(data_dir),
        "OPENPLATFORM_SECRET_KEY": secret_key,
    }
    env.pop("OPENPLATFORM_ISSUER", None)
    return env


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def serving(env: dict[str, str], workdir: Path, *, processes: int = 2) -> Iterator[list[str]]:
    """``processes`` separate ``openplatform serve`` processes (one worker
    each, as stateless servers behind a balancer): their base URLs."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(serve_process(env, workdir / f"server-{i}.log"))
            for i in range(processes)
        ]


def signed(app: App, method: str, params: Mapping[str, str]) -> dict[str, str]:
    """``params`` signed by ``app`` for ``method``, with a parameter of their
    own (``n``) so that parallel calls are never replays of each other."""
    full = {
        "api_key": app.api_key,
        "timestamp": str(int(time.time())),
        "n": f"{os.getpid()}-{next(_distinct)}",
        **params,
    }
    full["sig"] = sign([*full.items(), ("method", method)], app.secret)
    return full


async def call(
    client: httpx.AsyncClient, app: App, method: str, params: Mapping[str, str]
) -> httpx.Response:
    return await client.post(f"/rest/2.0/{method}", data=signed(app, method, params))
