"""Cost of each hot-path read of the storage layer against a raw driver query.

For SQLite and (when it answers) PostgreSQL, in the same run: a fresh database
migrated to head and seeded (users, apps, tokens with session keys, consents),
then for each read the gateway and ``users.*`` make on a signed call —
``tokens.find_access_token``, ``tokens.find_session``, ``users.get``,
``users.get_many`` (1 and 20 uids), ``apps.get_by_api_key``, ``consents.get``
— µs of wall time and of process CPU (this thread and the driver's, e.g.
aiosqlite's worker thread) per call, one call at a time, and the same with
``--concurrency`` calls in flight. The baseline is the raw driver doing the
token lookup on the same database: aiosqlite ``execute`` + ``fetchone``,
asyncpg ``fetchrow`` (a prepared statement, through an asyncpg pool). Rounds are interleaved; the
lowest CPU per call of each read is kept, and printed as a ratio of the
baseline's.

    .venv/bin/python bench/storage_reads.py [--n 2000] [--rounds 3] [--concurrency 16]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres | --no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox, hash_token
from openplatform.storage.database import Database
from openplatform.storage.migrate import upgrade_async
from openplatform.storage.models import User, utcnow

USERS = 1000
TOKENS = 200
APPS = 20
BASELINE = "raw driver (token)"
TOKEN_SQL = "SELECT id, app_id, user_id, grant_id, scope, expires_at, revoked_at, created_at"


@dataclass
class Seeded:
    access_tokens: list[str]
    session_keys: list[str]
    api_keys: list[str]
    app_id: int
    uids: list[int]


@dataclass(frozen=True)
class Cost:
    wall_us: float
    cpu_us: float


async def seed(database: Database) -> Seeded:
    """Users (inserted directly: no Argon2), apps, tokens with session keys,
    consents of every seeded user to the first app."""
    now = utcnow()
    async with database.sessions.write() as session:
        await session.execute(
            insert(User),
            [
                {
                    "username": f"user{n}",
                    "password_hash": "x",
                    "display_name": f"User {n}",
                    "email": f"user{n}@example.com",
                    "avatar_url": "",
                    "sex": 0,
                    "birthday": "",
                    "locale": "en",
                    "profile_visibility": "public",
                    "disabled": False,
                    "created_at": now,
                }
                for n in range(USERS)
            ],
        )
    users = await database.users.get_many(range(1, USERS + 1))
    uids = sorted(users)
    apps = [await database.apps.create(AppSettings(name=f"app {n}")) for n in range(APPS)]
    app_id = apps[0].id
    access_tokens, session_keys = [], []
    for n in range(TOKENS):
        uid = uids[n % len(uids)]
        grant = await database.tokens.create_grant(app_id, uid, "basic email", "authorization_code")
        issued = await database.tokens.issue(grant, app_id, uid, "basic email", 3600, None, True)
        assert issued.session_key is not None
        access_tokens.append(issued.access_token)
        session_keys.append(issued.session_key)
        await database.consents.grant(uid, app_id, "basic email")
    return Seeded(access_tokens, session_keys, [app.api_key for app in apps], app_id, uids)


def reads(database: Database, data: Seeded) -> dict[str, Callable[[int], Awaitable[object]]]:
    """The hot reads, each taking a call number (which picks its key)."""
    tokens, keys, api_keys = data.access_tokens, data.session_keys, data.api_keys
    uids, app_id = data.uids, data.app_id
    rng = random.Random(7)
    batches = [rng.sample(uids, 20) for _ in range(64)]
    return {
        "find_access_token": lambda i: database.tokens.find_access_token(tokens[i % len(tokens)]),
        "find_session": lambda i: database.tokens.find_session(keys[i % len(keys)]),
        "users.get": lambda i: database.users.get(uids[i % len(uids)]),
        "users.get_many (1)": lambda i: database.users.get_many([uids[i % len(uids)]]),
        "users.get_many (20)": lambda i: database.users.get_many(batches[i % len(batches)]),
        "apps.get_by_api_key": lambda i: database.apps.get_by_api_key(api_keys[i % len(api_keys)]),
        "consents.get": lambda i: database.consents.get(uids[i % TOKENS], app_id),
    }


@contextlib.asynccontextmanager
async def raw_sqlite(path: Path, data: Seeded) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    import aiosqlite

    hashes = [hash_token(token) for token in data.access_tokens]
    sql = f"{TOKEN_SQL} FROM access_tokens WHERE token_hash = ?"
    async with aiosqlite.connect(path) as conn:

        async def query(i: int) -> object:
            cursor = await conn.execute(sql, (hashes[i % len(hashes)],))
            return await cursor.fetchone()

        yield query


@contextlib.asynccontextmanager
async def raw_postgres(url: str, data: Seeded) -> AsyncIterator[Callable[[int], Awaitable[object]]]:
    import asyncpg

    hashes = [hash_token(token) for token in data.access_tokens]
    sql = f"{TOKEN_SQL} FROM access_tokens WHERE token_hash = $1"
    async with asyncpg.create_pool(url, min_size=1, max_size=16) as pool:

        async def query(i: int) -> object:
            return await pool.fetchrow(sql, hashes[i % len(hashes)])

        yield query


async def measure(op: Callable[[int], Awaitable[object]], n: int, concurrency: int) -> Cost:
    for i in range(min(n, 200)):  # warm up the pool and the statement caches
        await op(i)
    wall, cpu = time.perf_counter(), time.process_time()

    async def lane(start: int) -> None:
        for i in range(start, n, concurrency):
            await op(i)

    await asyncio.gather(*(lane(start) for start in range(concurrency)))
    return Cost(
        (time.perf_counter() - wall) / n * 1e6,
        (time.process_time() - cpu) / n * 1e6,
    )


async def bench_backend(
    label: str,
    raw: contextlib.AbstractAsyncContextManager[Callable[[int], Awaitable[object]]],
    database: Database,
    data: Seeded,
    args: argparse.Namespace,
) -> None:
    best: dict[tuple[str, int], Cost] = {}
    async with raw as baseline:
        ops = {BASELINE: baseline, **reads(database, data)}
        for _ in range(args.rounds):
            for name, op in ops.items():
                for concurrency in (1, args.concurrency):
                    cost = await measure(op, args.n, concurrency)
                    kept = best.get((name, concurrency))
                    if kept is None or cost.cpu_us < kept.cpu_us:
                        best[(name, concurrency)] = cost
    print(f"\n{label}: µs per call, best of {args.rounds} rounds of {args.n} calls")
    c = args.concurrency
    print(
        f"{'read':<22}{'wall':>8}{'CPU':>8}{'x raw CPU':>11}"
        f"{f'wall@{c}':>10}{f'CPU@{c}':>9}{'x raw CPU':>11}"
    )
    raw1, rawc = best[(BASELINE, 1)], best[(BASELINE, c)]
    for name in ops:
        one, many = best[(name, 1)], best[(name, c)]
        print(
            f"{name:<22}{one.wall_us:>8.0f}{one.cpu_us:>8.0f}{one.cpu_us / raw1.cpu_us:>11.2f}"
            f"{many.wall_us:>10.0f}{many.cpu_us:>9.0f}{many.cpu_us / rawc.cpu_us:>11.2f}",
            flush=True,
        )


async def run_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="storage-reads-") as tmp:
        path = Path(tmp) / "openplatform.db"
        url = f"sqlite:///{path}"
        await upgrade_async(url)
        async with Database(url, SecretBox("storage-reads-bench")) as database:
            data = await seed(database)
            await bench_backend("SQLite (aiosqlite)", raw_sqlite(path, data), database, data, args)


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
        await upgrade_async(url)
        async with Database(url, SecretBox("storage-reads-bench")) as database:
            data = await seed(database)
            await bench_backend(
                "PostgreSQL (asyncpg)", raw_postgres(url, data), database, data, args
            )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=2000, help="calls per read per round")
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
