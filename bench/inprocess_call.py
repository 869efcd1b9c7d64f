"""The whole application called in-process (no HTTP server, no sockets):
µs of CPU per signed ``users.getLoggedInUser`` (or per ``batch.run`` of 20
of them, per token request, per introspection) — the part of a call the platform's own code costs,
steadier than a load test on a busy machine.

    .venv/bin/python bench/inprocess_call.py [--n 20000] [--profile]
        [--case signed|batch|token|introspect]
        [--database-url postgresql://…] [--cache-url redis://…]

Seeds a fresh SQLite file (or the given database), one app, one user and an
access token; then sends ``--n`` distinct signed calls (md5, timestamp,
call_id, the default rate limit, the token) through ``create_app`` as an
ASGI server would, checks every answer is code 0, and prints CPU µs per call
against an empty ASGI app driven the same way (the baseline of the same run).
``--profile`` prints the top of a cProfile of the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from openplatform.app import create_app
from openplatform.config import Settings
from openplatform.gateway.signature import sign
from openplatform.storage.apps import AppSettings
from openplatform.storage.migrate import upgrade_async

ASGI = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Any], Awaitable[None]]
METHOD = "users.getLoggedInUser"


async def drive(
    app: ASGI,
    bodies: list[bytes],
    path: str = f"/rest/2.0/{METHOD}",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> list[int]:
    """Each body as one POST, the way an ASGI server presents it."""
    statuses: list[int] = []
    for body in bodies:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/x-www-form-urlencoded"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False

        async def receive(body: bytes = body) -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer = dict(message["headers"])
                statuses.append(int(answer.get(b"x-error-code", b"-1")))

        await app(scope, receive, send)
    return statuses


async def empty_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-error-code", b"0")]})
    await send({"type": "http.response.body", "body": b'{"uid":1}'})


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="op-inprocess-"))
    env = {
        "OPENPLATFORM_DATA_DIR": str(workdir),
        "OPENPLATFORM_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'op.db'}",
        "OPENPLATFORM_CACHE_URL": args.cache_url,
        "OPENPLATFORM_SECRET_KEY": "bench-secret-key-not-for-production",
        "OPENPLATFORM_ISSUER": "http://127.0.0.1:8000",
    }
    settings = Settings.from_env(env)
    await upgrade_async(settings)
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    services = app.state.services
    db = services.database
    record = await db.apps.create(AppSettings.from_mapping({"name": "bench"}))
    record = await db.apps.update(
        record.id,
        {"rate_limits": [{"methods": "*", "per": "app", "limit": 10**6, "window_s": 1}]},
    )
    user = await db.users.create(f"bench{os.getpid()}", "bench password")
    grant = await db.tokens.create_grant(record.id, user.uid, "basic", "authorization_code")
    tokens = await db.tokens.issue(grant, record.id, user.uid, "basic", 86400, None, False)
    start_id = time.time_ns() // 1000

    def bodies(n: int, offset: int, method: str = METHOD, **extra: str) -> list[bytes]:
        out = []
        for i in range(n):
            params = {
                "api_key": record.api_key,
                "access_token": tokens.access_token,
                "timestamp": str(int(time.time())),
                "call_id": str(start_id + offset + i),
                "v": "2.0",
                **extra,
            }
            params["sig"] = sign([*params.items(), ("method", method)], record.secret)
            out.append(urlencode(params).encode())
        return out

    target: Callable[[list[bytes]], Awaitable[list[int]]]
    if args.case == "batch":
        feed = json.dumps([f"method={METHOD}"] * 20)
        work = bodies(args.n, 1000, "batch.run", method_feed=feed)

        async def target(work: list[bytes]) -> list[int]:
            return await drive(app, work, "/rest/2.0/batch.run")

        assert set(await target(bodies(50, 0, "batch.run", method_feed=feed))) == {0}
    elif args.case == "signed":
        work = bodies(args.n, 1000)

        async def target(work: list[bytes]) -> list[int]:
            return await drive(app, work)

        assert set(await drive(app, bodies(500, 0))) == {0}
    else:
        basic = base64.b64encode(f"{record.api_key}:{record.secret}".encode())
        auth = ((b"authorization", b"Basic " + basic),)
        if args.case == "token":
            path, work = "/oauth/2.0/token", [b"grant_type=client_credentials"] * args.n
        else:
            path = "/oauth/2.0/introspect"
            work = [f"token={tokens.access_token}".encode()] * args.n

        async def target(work: list[bytes]) -> list[int]:
            lanes = [work[i :: args.concurrency] for i in range(args.concurrency)]
            done = await asyncio.gather(*(drive(app, lane, path, auth) for lane in lanes))
            return [status for lane in done for status in lane]

        assert set(await target(work[:200])) == {0}
    cpu = time.process_time()
    await drive(empty_app, work)
    base_us = (time.process_time() - cpu) / args.n * 1e6
    profiler = cProfile.Profile() if args.profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    statuses = await target(work)
    if profiler:
        profiler.disable()
    call_us = (time.process_time() - cpu) / args.n * 1e6
    assert set(statuses) == {0}, {s: statuses.count(s) for s in set(statuses)}
    print(f"empty ASGI app  {base_us:7.1f} µs CPU per call")
    ratio = call_us / base_us
    print(f"{args.case:<15} {call_us:7.1f} µs CPU per call  ({ratio:.1f}x the empty app)")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(35)
        print(out.getvalue())
    await lifespan.__aexit__(None, None, None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--case", choices=["signed", "batch", "token", "introspect"], default="signed"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight (token, introspect)"
    )
    parser.add_argument("--database-url", default="")
    parser.add_argument("--cache-url", default="memory://")
    main_args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(main(main_args))
    except ImportError:
        asyncio.run(main(main_args))
