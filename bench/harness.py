"""``scripts/bench``: every case of issue 11 against its baselines, in one run.

Each case is a server started by the bench (one worker, pinned to CPU 0 with
``taskset``) loaded by ``wrk`` (one thread, pinned to CPU 1) on 127.0.0.1, at
1, 16, 64 and 256 connections, after waiting for both cores to be idle. The
cases run in turn and the whole sequence three times (interleaved), each time
on a fresh server and a fresh copy of its database; the report gives medians
and the spread. Every answer is checked (status and body); a run with a
wrong answer counts as failed, not as a measurement. See ``bench/README.md``.

    scripts/bench [--quick] [--cases a,b,d] [--repeats 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from asgi_servers import (
    BENCH_DIR,
    SERVER_CPU,
    SERVERS,
    WRK_CPU,
    free_port,
    group_cpu_seconds,
    serving_command,
)
from cases import (
    CASES,
    Case,
    Load,
    SignedCalls,
    signed_count,
    write_introspections,
    write_token_requests,
)
from machine import group_rss_mb, wait_for_idle_cores
from peer_servers import PEERS
from redis.asyncio import Redis
from report import Report, Run
from seed import TIERS, AppCredentials, TokenCredentials, seed
from wrk import WrkResult, run_wrk

from openplatform.storage.crypto import SecretBox

OPENPLATFORM = str(Path(sys.executable).with_name("openplatform"))
SECRET_KEY = "openplatform-bench-secret-key"
LUA = BENCH_DIR / "requests.lua"
RESULTS = BENCH_DIR / "results"
# No raw ceiling measured yet (e.g. --cases b): distinct signed calls to
# prepare per second of a run.
DEFAULT_RATE_CAP = 60_000.0
IDLE_THRESHOLD = 0.25
PACED_CYCLE_MS = 10.0  # a paced connection sends one request per cycle


class CaseUnavailable(Exception):
    """A case cannot run here (a service is down, a peer failed to install,
    the method does not exist yet): reported as n/a, not as a failure."""


@dataclass
class DataSet:
    """Apps and tokens a case's requests use, and where they are stored."""

    apps: list[AppCredentials]
    tokens: list[TokenCredentials]
    database: Path | None = None  # a SQLite file: each server gets a fresh copy
    database_url: str | None = None  # else a server database (not copied)
    cache_url: str = "memory://"
    requests: dict[str, Path] = field(default_factory=dict)  # static request files by load kind


@dataclass
class Settings:
    quick: bool
    repeats: int
    duration: float
    warmup: float
    idle_timeout_s: float
    cases: list[Case]
    postgres: str
    redis: str
    micro: bool
    asgi_server: str = "granian"  # the platform's cases: `openplatform serve --server`


class Bench:
    def __init__(self, settings: Settings, workdir: Path, report: Report) -> None:
        self.settings = settings
        self.workdir = workdir
        self.report = report
        self.box = SecretBox(SECRET_KEY)
        self.pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
        self.data: dict[str, DataSet] = {}
        self.unavailable: dict[str, str] = {}  # data set or case key -> why
        self.signed: dict[str, SignedCalls] = {}
        self.raw_ceiling = 0.0
        self.postgres_database: str | None = None

    # --- data sets ----------------------------------------------------------

    def prepare(self) -> None:
        for name in dict.fromkeys(case.data for case in self.settings.cases):
            if name == "none":
                continue
            started = time.perf_counter()
            try:
                self.data[name] = self._prepare(name)
            except CaseUnavailable as exc:
                self.unavailable[name] = str(exc)
                print(f"data {name}: n/a ({exc})", flush=True)
                continue
            seconds = time.perf_counter() - started
            self.report.seeding[name] = round(seconds, 1)
            print(f"data {name}: ready in {seconds:.1f} s", flush=True)

    def _prepare(self, name: str) -> DataSet:
        if name.startswith("sqlite-"):
            tier = TIERS[name.removeprefix("sqlite-")]
            path = self.workdir / f"{name}.db"
            seeded = asyncio.run(seed(f"sqlite:///{path}", self.box, tier))
            data = DataSet(seeded.apps, seeded.tokens, database=path)
        elif name == "postgres-redis":
            data = asyncio.run(self._prepare_postgres_redis())
        else:
            data = self._prepare_peer(name)
        token_path, introspect_path = self._oauth_paths(name)
        data.requests["token"] = self.workdir / f"{name}-token.txt"
        write_token_requests(data.requests["token"], data.apps, token_path)
        data.requests["introspect"] = self.workdir / f"{name}-introspect.txt"
        write_introspections(data.requests["introspect"], data.tokens, introspect_path)
        return data

    async def _prepare_postgres_redis(self) -> DataSet:
        try:
            redis = Redis.from_url(self.settings.redis)
            await redis.ping()
            await redis.aclose()
            admin = await asyncpg.connect(self.settings.postgres)
        except (OSError, asyncpg.PostgresError) as exc:
            raise CaseUnavailable(f"PostgreSQL or Redis not reachable: {exc}") from exc
        except Exception as exc:  # redis-py's own connection errors
            raise CaseUnavailable(f"Redis not reachable: {exc}") from exc
        name = f"openplatform_bench_{uuid.uuid4().hex[:12]}"
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.postgres_database = name
        url = self.settings.postgres.rsplit("/", 1)[0] + f"/{name}"
        seeded = await seed(url, self.box, TIERS["1k"])
        return DataSet(
            seeded.apps,
            seeded.tokens,
            database_url=url,
            cache_url=self.settings.redis,
        )

    def _prepare_peer(self, name: str) -> DataSet:
        peer = PEERS[name.split("-")[0]]
        try:
            peer.install()
        except RuntimeError as exc:
            raise CaseUnavailable(f"{peer.name} could not be installed: {exc}") from exc
        self.report.versions[peer.name] = peer.versions()
        tier = TIERS["1k"]
        options = ("--hashed",) if name == "dot-hashed" else ()
        written = peer.seed(self.workdir / f"{name}.db", tier.apps, tier.tokens, *options)
        return DataSet(written.apps, written.tokens, database=written.database)

    def _oauth_paths(self, data: str) -> tuple[str, str]:
        if data.startswith(("sqlite-", "postgres")):
            return "/oauth/2.0/token", "/oauth/2.0/introspect"
        peer = PEERS[data.split("-")[0]]
        return peer.token_path, peer.introspect_path

    def cleanup(self) -> None:
        asyncio.run(self._cleanup())

    async def _cleanup(self) -> None:
        if self.postgres_database is None:
            return
        admin = await asyncpg.connect(self.settings.postgres)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.postgres_database}" WITH (FORCE)')
        finally:
            await admin.close()
        redis = Redis.from_url(self.settings.redis)
        try:  # the platform's keys (prefix "op") in the bench's own Redis database
            keys = [key async for key in redis.scan_iter(match="op:*", count=1000)]
            for start in range(0, len(keys), 1000):
                await redis.delete(*keys[start : start + 1000])
        finally:
            await redis.aclose()

    # --- servers -----------------------------------------------------------

    @contextlib.contextmanager
    def server(self, case: Case, run_dir: Path) -> Iterator[tuple[str, int]]:
        """Start the case's server on a fresh copy of its data; yield its base URL
        and process group."""
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, (str(BENCH_DIR), os.environ.get("PYTHONPATH")))
            ),
        }
        data = self.data.get(case.data)
        database = None
        if data is not None and data.database is not None:
            database = run_dir / data.database.name
            shutil.copyfile(data.database, database)
        cwd = BENCH_DIR
        if case.server in ("raw", "hello"):
            factory = {"raw": "asgi_targets:raw_hello_app", "hello": "asgi_targets:hello_app"}[
                case.server
            ]
            command = SERVERS["granian"].command(factory, port)
        elif case.server in PEERS:
            peer = PEERS[case.server]
            command, cwd = peer.command(port), peer.directory
            env[peer.database_env] = str(database)
        else:
            assert data is not None
            env |= {
                "OPENPLATFORM_DATA_DIR": str(run_dir / "data"),
                "OPENPLATFORM_DATABASE_URL": data.database_url or f"sqlite:///{database}",
                "OPENPLATFORM_CACHE_URL": data.cache_url,
                "OPENPLATFORM_SECRET_KEY": SECRET_KEY,
            }
            if case.server == "gateway":
                command = SERVERS["granian"].command("gateway_targets:gateway_echo_app", port)
            else:  # the platform as users run it
                server = self.settings.asgi_server
                command = [OPENPLATFORM, "serve", "--port", str(port), "--server", server]
        with serving_command(
            case.key,
            command,
            port,
            health_check(case),
            env=env,
            workdir=run_dir,
            pin=self.pin,
            cwd=cwd,
        ) as started:
            yield started

    # --- runs --------------------------------------------------------------

    def run_case(self, case: Case, repeat: int) -> None:
        reason = self.unavailable.get(case.key) or self.unavailable.get(case.data)
        if reason is not None:
            self.report.unavailable[case.key] = reason
            return
        run_dir = self.workdir / f"{case.key}-{repeat}"
        run_dir.mkdir()
        try:
            with self.server(case, run_dir) as (base, pgid):
                self._probe(case, base)
                for connections in self._connections(case):
                    self._measure(case, repeat, base, pgid, connections)
                if case.paced and not self.settings.quick:
                    self._measure_paced(case, repeat, base, pgid)
                self.report.rss_mb.setdefault(case.key, []).append(round(group_rss_mb(pgid), 1))
        except CaseUnavailable as exc:
            self.unavailable[case.key] = str(exc)
            self.report.unavailable[case.key] = str(exc)
            print(f"{case.key}: n/a ({exc})", flush=True)
        except Exception as exc:  # one broken case must not lose the others' results
            message = f"{type(exc).__name__}: {exc}"
            self.report.failures.setdefault(case.key, []).append(message)
            print(f"{case.key} run {repeat}: FAILED {message}", flush=True)
            traceback.print_exc()
        else:
            shutil.rmtree(run_dir, ignore_errors=True)  # the database copy can be large

    def _connections(self, case: Case) -> tuple[int, ...]:
        if self.settings.quick:
            return (64,) if case.server == "raw" else (16,)
        return case.connections

    def _probe(self, case: Case, base: str) -> None:
        """One request before the runs, so a broken case fails with its answer
        (and ``batch.run`` that does not exist yet is reported as n/a)."""
        if case.load.kind == "get":
            return
        if case.load.kind in ("token", "introspect"):
            with self.data[case.data].requests[case.load.kind].open() as requests:
                line = requests.readline()
        else:
            (path,) = self._signed_calls(case).write(self.workdir / "probe", 1, case.load, 1)
            with path.open() as calls:
                line = calls.readline()
        method, target, authorization, body = line.rstrip("\n").split("\t")
        request = urllib.request.Request(base + target, data=body.encode(), method=method)
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        if authorization:
            request.add_header("Authorization", authorization)
        try:
            with urllib.request.urlopen(request, timeout=30):
                return
        except urllib.error.HTTPError as exc:
            answer = exc.read().decode(errors="replace")
            if case.load.kind == "batch" and exc.code == 404 and '"error_code":3' in answer:
                raise CaseUnavailable("batch.run not available") from None
            raise RuntimeError(f"probe answered {exc.code}: {answer[:500]}") from None

    def _drain(self, case: Case, base: str) -> None:
        """Wait until the server answers a health check: requests that wrk's
        last run left queued (a gunicorn ``sync`` worker still serves every
        one of them after wrk closed their connections) must not eat into
        the next run."""
        with urllib.request.urlopen(base + health_check(case)[0], timeout=120):
            return

    def _signed_calls(self, case: Case) -> SignedCalls:
        """The signed calls of the case's data set (one ``call_id`` counter each)."""
        data = self.data[case.data]
        return self.signed.setdefault(case.data, SignedCalls(data.tokens))

    def _wrk(
        self,
        case: Case,
        base: str,
        connections: int,
        seconds: float,
        rate_cap: float,
        delay_ms: int = 0,
    ) -> WrkResult:
        load: Load = case.load
        env = {"BENCH_EXPECT": load.expect}
        if load.reject:
            env["BENCH_REJECT"] = load.reject
        url = base + ("/hello" if case.server == "hello" else "/")
        threads = 1
        if load.kind in ("token", "introspect"):
            env["BENCH_REQUESTS"] = str(self.data[case.data].requests[load.kind])
        elif load.kind != "get":
            # One wrk thread per connection, each with its own file of calls
            # (SignedCalls: call_id arrives in order), each call sent once.
            prefix = self.workdir / f"{case.key}-calls"
            count = signed_count(rate_cap, seconds)
            self._signed_calls(case).write(prefix, count, load, connections)
            env |= {"BENCH_REQUESTS": str(prefix), "BENCH_PER_THREAD": "1", "BENCH_ONCE": "1"}
            threads = connections
        if delay_ms:
            env["BENCH_DELAY_MS"] = str(delay_ms)
        return run_wrk(
            url,
            duration=seconds,
            connections=connections,
            threads=threads,
            cpu=WRK_CPU if self.pin else None,
            script=LUA,
            script_env=env,
            timeout_s=10,
        )

    def _measure(
        self,
        case: Case,
        repeat: int,
        base: str,
        pgid: int,
        connections: int,
        delay_ms: int = 0,
        rate_cap: float | None = None,
    ) -> Run:
        settings = self.settings
        cap = rate_cap or (self.raw_ceiling * 1.25 if self.raw_ceiling else DEFAULT_RATE_CAP)
        idle = wait_for_idle_cores(
            (SERVER_CPU, WRK_CPU), threshold=IDLE_THRESHOLD, timeout_s=settings.idle_timeout_s
        )
        warning = None
        if not idle.idle:
            busy = ", ".join(f"CPU {core} {share:.0%}" for core, share in idle.busy.items())
            warning = f"cores still busy after {idle.waited_s:.0f} s ({busy})"
        self._drain(case, base)
        self._wrk(case, base, connections, settings.warmup, cap, delay_ms)
        self._drain(case, base)
        cpu_before = group_cpu_seconds(pgid)
        result = self._wrk(case, base, connections, settings.duration, cap, delay_ms)
        cpu = group_cpu_seconds(pgid) - cpu_before
        run = Run.of(case.key, repeat, connections, result, cpu, paced=bool(delay_ms), busy=warning)
        if case.server == "raw":
            self.raw_ceiling = max(self.raw_ceiling, result.requests_per_second)
        self.report.add(run)
        print(run.line(), flush=True)
        return run

    def _measure_paced(self, case: Case, repeat: int, base: str, pgid: int) -> None:
        """p99 at half load: connections paced (wrk's ``delay``) so together they
        send about half of this run's peak throughput."""
        runs = [
            r for r in self.report.runs if r.case == case.key and r.repeat == repeat and not r.paced
        ]
        if not runs or any(r.errors for r in runs):
            return
        half = max(r.requests_per_second for r in runs) / 2
        idle_latency = min(r.p50_ms for r in runs)
        connections = max(1, min(256, round(half * PACED_CYCLE_MS / 1000)))
        delay_ms = max(1, round(connections * 1000 / half - idle_latency))
        self._measure(case, repeat, base, pgid, connections, delay_ms=delay_ms, rate_cap=half * 1.5)


def health_check(case: Case) -> tuple[str, str]:
    """A GET path that answers at once when the server is idle, and a key of
    its JSON answer."""
    if case.server == "raw":
        return "/", "hello"
    if case.server == "hello":
        return "/hello", "hello"
    return "/healthz", "status"


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="one short run of the main cases (< 60 s)"
    )
    parser.add_argument(
        "--cases", help=f"comma list of cases (default all): {', '.join(c.key for c in CASES)}"
    )
    parser.add_argument(
        "--repeats", type=int, help="interleaved runs of each case (default 3, quick 1)"
    )
    parser.add_argument(
        "--duration", type=float, help="seconds per measured run (default 4, quick 2)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1, help="seconds of warm-up before each run"
    )
    parser.add_argument(
        "--idle-timeout", type=float, help="seconds to wait for idle cores (default 10, quick 1)"
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where a throwaway database is created",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/14",
        help="a Redis database the bench may fill (its op:* keys are deleted after)",
    )
    parser.add_argument(
        "--server",
        choices=["granian", "uvicorn"],
        default="granian",
        help="the ASGI server of the platform's cases (openplatform serve --server)",
    )
    parser.add_argument(
        "--no-micro",
        action="store_true",
        help="skip the in-process benches (cache_roundtrip.py, storage_reads.py)",
    )
    args = parser.parse_args(argv)
    keys = args.cases.split(",") if args.cases else None
    unknown = set(keys or ()) - {case.key for case in CASES}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    cases = [c for c in CASES if (c.key in keys if keys else not (args.quick and c.full_only))]
    return Settings(
        quick=args.quick,
        repeats=args.repeats or (1 if args.quick else 3),
        duration=args.duration or (2 if args.quick else 4),
        warmup=args.warmup,
        idle_timeout_s=args.idle_timeout
        if args.idle_timeout is not None
        else (1 if args.quick else 10),
        cases=cases,
        postgres=args.postgres,
        redis=args.redis,
        asgi_server=args.server,
        micro=not (args.quick or args.no_micro or keys),
    )


def micro_benchmarks() -> dict[str, str]:
    """The in-process benches (no server, no wrk), short: their printed tables."""
    outputs = {}
    for script, options in (
        ("cache_roundtrip.py", ["--n", "3000", "--rounds", "2"]),
        ("storage_reads.py", ["--n", "500", "--rounds", "2"]),
    ):
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / script), *options],
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        outputs[script] = done.stdout + (
            f"\n(exit {done.returncode}) {done.stderr[-2000:]}" if done.returncode else ""
        )
        print(f"{script}:\n{outputs[script]}", flush=True)
    return outputs


def main() -> None:
    # A SIGTERM ends the run like Ctrl-C: servers stopped, throwaway database dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    settings = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("scripts/bench needs wrk: apt-get install -y wrk")
    started = datetime.now().astimezone()
    report = Report(
        started=started.isoformat(timespec="seconds"),
        mode="quick" if settings.quick else "full",
        repeats=settings.repeats,
        duration_s=settings.duration,
        machine=(
            f"{platform.node()}, {os.cpu_count()} CPUs, {platform.machine()}, "
            f"Linux {platform.release()}, Python {platform.python_version()}"
        ),
    )
    with tempfile.TemporaryDirectory(prefix="openplatform-bench-") as tmp:
        bench = Bench(settings, Path(tmp), report)
        if not bench.pin:
            print(
                "warning: fewer than 2 CPUs or no taskset: server and wrk are not pinned",
                flush=True,
            )
        try:
            bench.prepare()
            for repeat in range(1, settings.repeats + 1):
                for case in settings.cases:
                    bench.run_case(case, repeat)
        finally:
            bench.cleanup()
    if settings.micro:
        report.micro = micro_benchmarks()
    report.finished = datetime.now().astimezone().isoformat(timespec="seconds")
    stem = started.strftime("%Y-%m-%d-%H%M") + ("-quick" if settings.quick else "")
    written = report.write(RESULTS, stem, {case.key: case for case in CASES})
    print(report.markdown({case.key: case for case in CASES}))
    print("written: " + ", ".join(str(path.relative_to(BENCH_DIR.parent)) for path in written))
    if report.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
