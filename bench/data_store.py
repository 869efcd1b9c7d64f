"""Cost of data-store calls against a signed ``users.getLoggedInUser``.

For SQLite and (when it answers) PostgreSQL, in the same run: a fresh
database migrated to head, one app (rate limit lifted) with an object type
``book`` (a string, an integer and a text property), one object, a hash key
with a string and a counter, and a user whose session key (scope ``data``)
signs every call — so every target pays the same gateway checks (app from the
in-process cache, md5 signature, session lookup, timestamp, replay and rate
limit in the in-process shared state) and differs only by what the method
does:

* ``users.getLoggedInUser`` — the baseline (no I/O of its own);
* ``data.getObject`` and ``data.getHashValue`` — a data-store read (one SELECT);
* ``data.incHashValue`` — an atomic increment of an existing counter (one
  UPDATE … RETURNING in autocommit);
* ``data.setHashValue`` — a write transaction (the app's usage row locked,
  the old value deleted, the new one inserted, the bytes charged).

The whole ASGI app (``openplatform.app.create_app``, with its request-id and
metrics middleware) is driven in process with raw ASGI messages, POSTing
distinct signed form bodies (no HTTP client or server in the measurement).
Prints µs of wall time and of process CPU (all threads, aiosqlite's included)
per call, one call at a time and with ``--concurrency`` in flight, and each as
a ratio of the baseline measured in the same run. Rounds are interleaved; the
lowest CPU per call is kept.

    .venv/bin/python bench/data_store.py [--n 2000] [--rounds 3] [--concurrency 16]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres | --no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from starlette.applications import Starlette

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.config import Settings
from openplatform.gateway.signature import sign
from openplatform.services import Services
from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.data_store import PropType, Tenant
from openplatform.storage.database import Database
from openplatform.storage.migrate import upgrade_async

BASELINE = "users.getLoggedInUser"
KEY = {"obj_type": "book", "key": "isbn:0441013597"}
TARGETS: dict[str, dict[str, str]] = {
    BASELINE: {},
    "data.getObject": {"obj_id": "1"},
    "data.getHashValue": {**KEY, "prop_name": "title"},
    "data.incHashValue": {**KEY, "prop_name": "pages"},
    "data.setHashValue": {**KEY, "prop_name": "title", "value": "Dune"},
}


@dataclass(frozen=True)
class Cost:
    wall_us: float
    cpu_us: float


@dataclass
class Caller:
    """Signs and sends calls to the ASGI app, each with a parameter of its own."""

    asgi: Starlette
    api_key: str
    session_key: str
    session_secret: str
    counter: itertools.count[int]

    def body(self, method: str) -> bytes:
        params = {
            "api_key": self.api_key,
            "session_key": self.session_key,
            "timestamp": str(int(time.time())),
            "n": str(next(self.counter)),
            **TARGETS[method],
        }
        params["sig"] = sign([*params.items(), ("method", method)], self.session_secret)
        return urlencode(params).encode()

    async def call(self, method: str) -> None:
        body = self.body(method)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": f"/rest/2.0/{method}",
            "raw_path": f"/rest/2.0/{method}".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"bench"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("bench", 80),
        }
        sent = False
        status = 0

        async def receive() -> dict[str, object]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # no disconnect while the app answers
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(str(message["status"]))
                headers = dict(message.get("headers", []))  # type: ignore[call-overload]
                code = headers.get(b"x-error-code", b"?")
                if status != 200 or code != b"0":
                    raise RuntimeError(f"{method} answered {status} (code {code.decode()})")

        await self.asgi(scope, receive, send)  # type: ignore[arg-type]
        assert status == 200


async def prepare(database: Database, settings: Settings) -> Caller:
    """The app, the user, the type, the object, the hash key and the counter."""
    app = await database.apps.create(AppSettings(name="bench", scopes=("basic", "data")))
    limits = [{"methods": "*", "per": "app", "limit": 1_000_000_000, "window_s": 60}]
    app = await database.apps.update(app.id, {"rate_limits": limits})
    user = await database.users.create(username="benchuser", password="bench-password")
    grant = await database.tokens.create_grant(app.id, user.uid, "basic data", "authorization_code")
    issued = await database.tokens.issue(grant, app.id, user.uid, "basic data", 86400, None, True)
    assert issued.session_key is not None and issued.session_secret is not None
    store, tenant = database.data_store, Tenant(app.id, app.settings.storage_quota_bytes)
    await store.create_type(tenant, "book")
    for name, prop_type in (
        ("title", PropType.STRING),
        ("pages", PropType.INTEGER),
        ("body", PropType.TEXT),
    ):
        await store.define_property(tenant, "book", name, prop_type)
    await store.create_object(tenant, "book", {"title": "Dune", "pages": 412, "body": "本" * 200})
    await store.set_hash_value(tenant, "book", KEY["key"], "title", "Dune")
    await store.increment_hash_value(tenant, "book", KEY["key"], "pages", 1)
    services = Services(settings, database, MemorySharedState(prefix="bench"), "http://bench")
    asgi = create_app(settings, services)
    return Caller(asgi, app.api_key, issued.session_key, issued.session_secret, itertools.count())


async def measure(op: Callable[[], Awaitable[None]], n: int, concurrency: int) -> Cost:
    for _ in range(min(n, 200)):  # warm up the pool, the caches and the statements
        await op()
    wall, cpu = time.perf_counter(), time.process_time()

    async def lane(calls: int) -> None:
        for _ in range(calls):
            await op()

    per_lane = n // concurrency
    await asyncio.gather(*(lane(per_lane) for _ in range(concurrency)))
    done = per_lane * concurrency
    return Cost(
        (time.perf_counter() - wall) / done * 1e6,
        (time.process_time() - cpu) / done * 1e6,
    )


async def bench_database(label: str, url: str, workdir: Path, args: argparse.Namespace) -> None:
    await upgrade_async(url)
    settings = Settings(
        data_dir=workdir / "data",
        database_url=url,
        cache_url="memory://",
        issuer="http://bench",
    )
    async with Database(url, SecretBox("data-store-bench")) as database:
        caller = await prepare(database, settings)
        best: dict[tuple[str, int], Cost] = {}
        for _ in range(args.rounds):
            for method in TARGETS:
                for concurrency in (1, args.concurrency):
                    cost = await measure(lambda m=method: caller.call(m), args.n, concurrency)
                    kept = best.get((method, concurrency))
                    if kept is None or cost.cpu_us < kept.cpu_us:
                        best[(method, concurrency)] = cost
    c = args.concurrency
    print(f"\n{label}: µs per signed call, best of {args.rounds} rounds of {args.n} calls")
    print(
        f"{'method':<24}{'wall':>8}{'CPU':>8}{'x base CPU':>12}{'x base wall':>12}"
        f"{f'wall@{c}':>10}{f'CPU@{c}':>9}{'x base CPU':>12}"
    )
    one_base, many_base = best[(BASELINE, 1)], best[(BASELINE, c)]
    for method in TARGETS:
        one, many = best[(method, 1)], best[(method, c)]
        print(
            f"{method:<24}{one.wall_us:>8.0f}{one.cpu_us:>8.0f}"
            f"{one.cpu_us / one_base.cpu_us:>12.2f}{one.wall_us / one_base.wall_us:>12.2f}"
            f"{many.wall_us:>10.0f}{many.cpu_us:>9.0f}{many.cpu_us / many_base.cpu_us:>12.2f}",
            flush=True,
        )


async def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="data-store-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'openplatform.db'}"
        await bench_database("SQLite (aiosqlite)", url, Path(tmp), args)


async def run_postgres(args: argparse.Namespace) -> None:
    import asyncpg

    server = args.postgres
    name = f"openplatform_bench_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(server)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"\nPostgreSQL: skipped ({exc})")
        return
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = server.rsplit("/", 1)[0] + f"/{name}"
        with tempfile.TemporaryDirectory(prefix="data-store-bench-") as tmp:
            await bench_database("PostgreSQL (asyncpg)", url, Path(tmp), args)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="calls per target per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best is kept")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (2nd run)")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server's URL (a database is created and dropped)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    asyncio.run(run_sqlite(args))
    if not args.no_postgres:
        asyncio.run(run_postgres(args))


if __name__ == "__main__":
    main()
