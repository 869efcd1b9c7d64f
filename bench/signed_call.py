"""Signed open-API calls against a bare ASGI hello, served the same way.

Both targets run in ``openplatform serve``'s server (Granian, one worker,
access log off) and are loaded by the same ``wrk`` (one thread, pinned apart
from the server on two cores or more):

* ``raw``: ``asgi_targets:raw_hello_app``, a bare ASGI callable (the floor);
* ``signed``: the whole platform app (``openplatform.app:app_from_env``, with
  its request-id and metrics middleware) answering
  ``POST /rest/2.0/users.getInfo`` signed with md5 — every check of
  PROTOCOL §3.3 (app from the in-process cache, signature, timestamp, replay
  and a rate limit in one shared-state step) and one SELECT for the user;
* ``gateway``: the same checks and middleware answering ``bench.echo``, a
  method without I/O (``gateway_targets:gateway_echo_app``): the gateway's
  own cost.

Every signed request is distinct (a counter parameter), as replays are
refused: they are generated beforehand and ``wrk`` sends them in turn through
a Lua script. SQLite and the in-process cache by default, ``--cache redis://…``
for Redis. Prints req/s, p99 and server CPU per request, and each as a ratio
of ``raw`` measured in the same run (best of ``--repeats``, interleaved).

    .venv/bin/python bench/signed_call.py [--duration 10] [--cache redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from asgi_servers import BENCH_DIR, SERVERS, WRK_CPU, Target, group_cpu_seconds, serving
from gateway_targets import ECHO
from wrk import WrkResult, parse_wrk_output

from openplatform.gateway.signature import sign

OPENPLATFORM = str(Path(sys.executable).with_name("openplatform"))
METHOD = "users.getInfo"
RAW = Target("raw", "asgi_targets:raw_hello_app", "/", "hello")
SIGNED = Target("signed", "openplatform.app:app_from_env", "/healthz", "status")
GATEWAY = Target("gateway", "gateway_targets:gateway_echo_app", "/healthz", "status")

LUA = """
local bodies = {}
local i = 0
local path = "/rest/2.0/%s"
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  -- past the end every request would be a replay (107): the run is refused
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", path, headers, bodies[i])
end
"""


@dataclass(frozen=True)
class Measured:
    target: str
    result: WrkResult
    cpu_us_per_request: float


def cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [OPENPLATFORM, *args, "--json"], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def lift_rate_limit(env: dict[str, str], app_id: int) -> None:
    """The default per-app limit would refuse a long run: one limit stays, high."""
    from openplatform.config import Settings
    from openplatform.storage.database import Database

    async with Database.from_settings(Settings.from_env(env)) as database:
        limits = [{"methods": "*", "per": "app", "limit": 1_000_000_000, "window_s": 60}]
        await database.apps.update(app_id, {"rate_limits": limits})


def write_bodies(path: Path, method: str, count: int, api_key: str, secret: str, uid: int) -> None:
    """``count`` distinct signed bodies for ``METHOD`` (valid for the timestamp window).

    They differ by a parameter of their own, not by ``call_id``: with many
    connections requests arrive out of order, and ``call_id`` must increase."""
    now = str(int(time.time()))
    first = int(time.time() * 1000)
    with path.open("w") as out:
        for n in range(count):
            params = {
                "api_key": api_key,
                "timestamp": now,
                "n": f"{first}-{n}",
                "uids": str(uid),
                "fields": "uid,username,display_name",
            }
            params["sig"] = sign([*params.items(), ("method", method)], secret)
            out.write(urlencode(params) + "\n")


def run_wrk_script(
    url: str, script: Path | None, bodies: Path | None, duration: float, args: argparse.Namespace
) -> WrkResult:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    if bodies is not None:
        command += ["--", str(bodies)]
    if args.pin:
        command = ["taskset", "-c", str(WRK_CPU), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    return parse_wrk_output(done.stdout)


def measure(
    target: Target, env: dict[str, str], workdir: Path, args: argparse.Namespace, method: str
) -> Measured:
    """``method`` empty: plain GETs of the target's path; else distinct signed calls."""
    server = SERVERS["granian"]
    with serving(server, target, env, workdir, args.pin) as (url, pgid):
        script = bodies = None
        if method:
            script = workdir / "signed.lua"
            script.write_text(LUA % method)
            bodies = workdir / "bodies.txt"
            count = int(args.max_rps * (args.warmup + 1))
            write_bodies(bodies, method, count, args.api_key, args.secret, args.uid)
        run_wrk_script(url, script, bodies, args.warmup, args)
        if bodies is not None:  # fresh bodies: the warm-up sent the first ones
            count = int(args.max_rps * (args.duration + 1))
            write_bodies(bodies, method, count, args.api_key, args.secret, args.uid)
        cpu_before = group_cpu_seconds(pgid)
        result = run_wrk_script(url, script, bodies, args.duration, args)
        cpu = group_cpu_seconds(pgid) - cpu_before
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(
            f"{target.name}: {result.non_2xx} non-2xx responses, {result.socket_errors} "
            "socket errors (for signed: raise --max-rps so no body is sent twice)"
        )
    return Measured(target.name, result, cpu * 1e6 / result.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per target; best is kept")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--cache", default="memory://", help="OPENPLATFORM_CACHE_URL")
    parser.add_argument(
        "--max-rps", type=float, default=8000, help="signed bodies generated per second of run"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    args.pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2

    with tempfile.TemporaryDirectory(prefix="signed-bench-") as tmp:
        workdir = Path(tmp)
        env = {
            **os.environ,
            "OPENPLATFORM_DATA_DIR": str(workdir / "data"),
            "OPENPLATFORM_DATABASE_URL": f"sqlite:///{workdir / 'openplatform.db'}",
            "OPENPLATFORM_CACHE_URL": args.cache,
            "OPENPLATFORM_SECRET_KEY": "signed-call-bench-key",
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        subprocess.run([OPENPLATFORM, "db", "upgrade"], env=env, check=True)
        app = cli(env, "apps", "create", "--name", "bench")
        user = cli(env, "users", "create", "--username", "benchuser", "--password", "pw-bench")
        asyncio.run(lift_rate_limit(env, int(str(app["app_id"]))))
        args.api_key, args.secret, args.uid = str(app["api_key"]), str(app["secret"]), user["uid"]

        print(
            f"signed {METHOD} (md5, SQLite, cache {args.cache}) vs bare ASGI hello; "
            f"granian, 1 worker; wrk -t1 -c{args.connections} -d{args.duration:g}s; "
            f"pinned: {args.pin}; best of {args.repeats}",
            flush=True,
        )
        best: dict[str, Measured] = {}
        for repeat in range(1, args.repeats + 1):
            for target, method in ((RAW, ""), (SIGNED, METHOD), (GATEWAY, ECHO)):
                run = measure(target, env, workdir, args, method)
                print(
                    f"run {repeat}: {run.target:<7} {run.result.requests_per_second:>9.0f} req/s"
                    f"  p99 {run.result.p99_ms:6.2f} ms  server CPU "
                    f"{run.cpu_us_per_request:7.1f} us/req",
                    flush=True,
                )
                kept = best.get(run.target)
                if kept is None or run.result.requests_per_second > kept.result.requests_per_second:
                    best[run.target] = run
    raw = best["raw"]
    print()
    print(f"{'':9}{'req/s':>10}{'p99 ms':>9}{'CPU us/req':>12}{'x raw req/s':>13}{'x raw CPU':>11}")
    for run in best.values():
        print(
            f"{run.target:<9}{run.result.requests_per_second:>10.0f}"
            f"{run.result.p99_ms:>9.2f}{run.cpu_us_per_request:>12.1f}"
            f"{run.result.requests_per_second / raw.result.requests_per_second:>13.3f}"
            f"{run.cpu_us_per_request / raw.cpu_us_per_request:>11.1f}"
        )


if __name__ == "__main__":
    main()
