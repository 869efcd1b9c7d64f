"""Pruning a big table while the API answers (issue 12, housekeeping): do
API calls stall while ``openplatform db prune`` deletes 1M expired tokens?

    .venv/bin/python bench/prune.py [--tokens 1000000] [--batch 1000]
        [--calls 2000]

Seeds a fresh SQLite file with one app, one user, a live access token and
``--tokens`` access tokens that expired 30 days ago (one bulk insert, as
``bench/seed.py`` writes rows); then, in-process through ``create_app`` (as
``bench/inprocess_call.py`` drives it), two lanes of requests one after the
other — signed ``users.getInfo`` calls with the live token (a database read
each) and ``client_credentials`` token requests (a database write each) —
first alone (``--calls`` each: the baseline), then while one prune pass
(the housekeeping's, under its lease) deletes the expired tokens. Prints
the pass's duration and rows, and per lane p50/p99 latency during the pass
against before it, as ratios. Not a test: nothing is asserted but that every
answer was a success and every expired token went.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from inprocess_call import drive
from seed import _sqlite_time

from openplatform.app import create_app
from openplatform.config import Settings
from openplatform.gateway.signature import sign
from openplatform.housekeeping import Housekeeping
from openplatform.storage.apps import AppSettings
from openplatform.storage.migrate import upgrade_async
from openplatform.storage.models import utcnow

COLUMNS = ("token_hash", "app_id", "user_id", "scope", "expires_at", "created_at")


def seed_expired(path: str, app_id: int, user_id: int, count: int) -> None:
    """``count`` access tokens of the app and user that expired 30 days ago
    (hashes that no token has: nobody presents them), in one transaction."""
    to_text = _sqlite_time()
    created = to_text(utcnow() - timedelta(days=31))
    expired = to_text(utcnow() - timedelta(days=30))
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA cache_size=-262144")
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT INTO access_tokens ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)",
            ((f"{n:064x}", app_id, user_id, "basic", expired, created) for n in range(count)),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in ms."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def lane(
    one: Callable[[int], Awaitable[list[int]]], until: Callable[[int], bool]
) -> list[float]:
    """Requests one after another until ``until(sent)``; their latencies."""
    latencies: list[float] = []
    sent = 0
    while not until(sent):
        started = time.perf_counter()
        statuses = await one(sent)
        latencies.append(time.perf_counter() - started)
        assert statuses == [0], statuses
        sent += 1
    return latencies


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="op-prune-"))
    path = workdir / "op.db"
    settings = Settings.from_env(
        {
            "OPENPLATFORM_DATA_DIR": str(workdir),
            "OPENPLATFORM_DATABASE_URL": f"sqlite:///{path}",
            "OPENPLATFORM_SECRET_KEY": "bench-secret-key-not-for-production",
            "OPENPLATFORM_ISSUER": "http://127.0.0.1:8000",
            "OPENPLATFORM_PRUNE_INTERVAL_S": "0",  # the pass below is the only one
        }
    )
    await upgrade_async(settings)
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    services = app.state.services
    db = services.database
    record = await db.apps.create(AppSettings.from_mapping({"name": "bench"}))
    record = await db.apps.update(
        record.id,
        {
            "rate_limits": [{"methods": "*", "per": "app", "limit": 10**6, "window_s": 1}],
            "grants": ["client_credentials"],
        },
    )
    user = await db.users.create("bench", "bench password")
    grant = await db.tokens.create_grant(record.id, user.uid, "basic", "authorization_code")
    live = await db.tokens.issue(grant, record.id, user.uid, "basic", 86400, None, False)

    started = time.perf_counter()
    await asyncio.to_thread(seed_expired, str(path), record.id, user.uid, args.tokens)
    print(f"seeded {args.tokens:,} expired access tokens in {time.perf_counter() - started:.1f} s")

    call_ids = iter(range(time.time_ns() // 1000, 2**62))

    async def signed_call(_: int) -> list[int]:
        params = {
            "api_key": record.api_key,
            "access_token": live.access_token,
            "timestamp": str(int(time.time())),
            "call_id": str(next(call_ids)),
            "fields": "username",
        }
        params["sig"] = sign([*params.items(), ("method", "users.getInfo")], record.secret)
        return await drive(app, [urlencode(params).encode()], "/rest/2.0/users.getInfo")

    basic = base64.b64encode(f"{record.api_key}:{record.secret}".encode())
    auth = ((b"authorization", b"Basic " + basic),)

    async def token_request(_: int) -> list[int]:
        body = [b"grant_type=client_credentials"]
        return await drive(app, body, "/oauth/2.0/token", auth)

    lanes = {"signed call (read)": signed_call, "token request (write)": token_request}
    for one in lanes.values():  # warm up: caches, compiled statements
        await lane(one, lambda sent: sent >= 50)
    before = await asyncio.gather(
        *(lane(one, lambda sent: sent >= args.calls) for one in lanes.values())
    )

    keeper = Housekeeping(db, services.shared_state, batch_rows=args.batch)
    started = time.perf_counter()
    pruning = asyncio.create_task(keeper.prune_once())
    during = await asyncio.gather(
        *(lane(one, lambda sent: pruning.done()) for one in lanes.values())
    )
    report = await pruning
    seconds = time.perf_counter() - started
    assert report is not None and report.access_tokens == args.tokens, report
    print(
        f"prune pass: {report.access_tokens:,} access tokens in {report.batches} batches "
        f"of at most {args.batch}, {seconds:.1f} s ({report.access_tokens / seconds:,.0f} rows/s)"
    )
    print(f"{'lane':<22} {'calls':>13} {'p50 ms':>15} {'p99 ms':>15} {'p50 ratio':>9} {'p99':>6}")
    for name, alone, busy in zip(lanes, before, during, strict=True):
        p50, p99 = percentiles(alone)
        busy50, busy99 = percentiles(busy) if len(busy) >= 2 else (float("nan"),) * 2
        print(
            f"{name:<22} {len(alone):>6}/{len(busy):<6} {p50:>7.2f}/{busy50:<7.2f} "
            f"{p99:>7.2f}/{busy99:<7.2f} {busy50 / p50:>8.2f}x {busy99 / p99:>5.2f}x"
        )
    print("(before/during the pass; ratio = during ÷ before)")
    await lifespan.__aexit__(None, None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=2000, help="per lane, before the pass")
    main_args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(main_args))
    except ImportError:
        asyncio.run(main(main_args))
