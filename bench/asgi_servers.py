"""Granian against Uvicorn, to choose the server behind ``openplatform serve``.

Each server (one worker, access log off) serves three targets from
``asgi_targets.py`` in turn: ``raw`` (bare ASGI hello, the floor), ``hello``
(a Starlette JSON route) and ``sqlite`` (a Starlette route running one
indexed SELECT through SQLAlchemy async + aiosqlite). ``wrk`` loads each for
``--duration`` seconds after a short warm-up; the server is pinned to CPU 0
and wrk to CPU 1 when the machine has two cores. Every (target, server) pair
runs ``--repeats`` times, interleaved, each on a fresh server process; the
best run (highest req/s) is reported. Results are ratios measured in the
same run: granian/uvicorn per target, and each target against ``raw`` on
the same server.

    .venv/bin/python bench/asgi_servers.py [--duration 10] [--servers granian,uvicorn]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from asgi_targets import ITEM_COUNT, SQLITE_PATH_ENV, create_items_database
from wrk import WrkResult, run_wrk

BENCH_DIR = Path(__file__).resolve().parent
SERVER_CPU = 0
WRK_CPU = 1


@dataclass(frozen=True)
class Target:
    name: str
    factory: str
    path: str
    expected_key: str


TARGETS = (
    Target("raw", "asgi_targets:raw_hello_app", "/", "hello"),
    Target("hello", "asgi_targets:hello_app", "/hello", "hello"),
    Target("sqlite", "asgi_targets:sqlite_app", "/item", "key"),
)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Server:
    """One server configuration: ``family`` is granian or uvicorn."""

    name: str
    family: str
    loop: str
    http: str = "auto"

    def missing(self) -> list[str]:
        wanted = [m for m in (self.loop, self.http) if m in ("uvloop", "httptools", "rloop")]
        return [m for m in wanted if not installed(m)]

    def resolved(self) -> str:
        """The event loop (and HTTP parser) the server's own ``auto`` rules pick."""
        if self.family == "granian":
            loop = self.loop
            if loop == "auto":
                loop = next((m for m in ("rloop", "uvloop") if installed(m)), "asyncio")
            return f"loop={loop}, http=granian (Rust/hyper)"
        loop = self.loop
        if loop == "auto":
            loop = "uvloop" if installed("uvloop") else "asyncio"
        http = self.http
        if http == "auto":
            http = "httptools" if installed("httptools") else "h11"
        return f"loop={loop}, http={http}"

    def command(self, factory: str, port: int) -> list[str]:
        if self.family == "granian":
            return [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--loop",
                self.loop,
                "--no-access-log",
                "--log-level",
                "warning",
                factory,
            ]
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            self.loop,
            "--http",
            self.http,
            "--lifespan",
            "on",
            "--no-access-log",
            "--log-level",
            "warning",
            factory,
        ]


SERVERS = {
    server.name: server
    for server in (
        Server("granian", "granian", loop="auto"),
        Server("uvicorn", "uvicorn", loop="auto", http="auto"),
        Server("granian-asyncio", "granian", loop="asyncio"),
        Server("uvicorn-asyncio", "uvicorn", loop="asyncio", http="h11"),
        Server("granian-uvloop", "granian", loop="uvloop"),
        Server("uvicorn-uvloop", "uvicorn", loop="uvloop", http="httptools"),
    )
}


@dataclass(frozen=True)
class Run:
    target: str
    server: str
    result: WrkResult
    cpu_us_per_request: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


def wait_until_answering(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            fetch(url)
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} within 30 s:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and every process it spawned (its own process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time so far of every process (all threads) in ``pgid``.

    Less sensitive to other load on a shared machine than req/s: it counts the
    work the server did, not the time it waited for a CPU.
    """
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # After "pid (comm) ": state, ppid, pgrp, ... utime (14th field), stime (15th).
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving_command(
    name: str,
    command: list[str],
    port: int,
    check: tuple[str, str],
    *,
    env: dict[str, str],
    workdir: Path,
    pin: bool,
    cwd: Path = BENCH_DIR,
) -> Iterator[tuple[str, int]]:
    """Start ``command`` (listening on ``port``; pinned to ``SERVER_CPU`` when
    ``pin``) in its own process group; once ``GET check[0]`` answers JSON with
    the key ``check[1]``, yield the base URL and the process group. Stops the
    whole group afterwards."""
    if pin:
        command = ["taskset", "-c", str(SERVER_CPU), *command]
    log = workdir / f"{name}.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    path, expected_key = check
    try:
        wait_until_answering(process, base + path, log)
        body = fetch(base + path)
        if expected_key not in body:
            raise RuntimeError(f"{name}: unexpected body {body!r}")
        yield base, process.pid
    finally:
        stop(process)


@contextlib.contextmanager
def serving(
    server: Server, target: Target, env: dict[str, str], workdir: Path, pin: bool
) -> Iterator[tuple[str, int]]:
    """Start ``server`` on ``target``; once it answers, yield its URL and process group."""
    port = free_port()
    with serving_command(
        f"{server.name}-{target.name}",
        server.command(target.factory, port),
        port,
        (target.path, target.expected_key),
        env=env,
        workdir=workdir,
        pin=pin,
    ) as (base, pgid):
        yield base + target.path, pgid


def measure(
    server: Server,
    target: Target,
    *,
    env: dict[str, str],
    workdir: Path,
    pin: bool,
    duration: float,
    warmup: float,
    connections: int,
) -> Run:
    wrk_cpu = WRK_CPU if pin else None
    with serving(server, target, env, workdir, pin) as (url, pgid):
        run_wrk(url, duration=warmup, connections=connections, cpu=wrk_cpu)
        cpu_before = group_cpu_seconds(pgid)
        result = run_wrk(url, duration=duration, connections=connections, cpu=wrk_cpu)
        cpu_seconds = group_cpu_seconds(pgid) - cpu_before
    if result.non_2xx or result.socket_errors:
        raise RuntimeError(
            f"{server.name} {target.name}: {result.non_2xx} non-2xx responses, "
            f"{result.socket_errors} socket errors"
        )
    return Run(target.name, server.name, result, cpu_seconds * 1e6 / result.requests)


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def print_header(servers: list[Server], args: argparse.Namespace, pin: bool) -> None:
    packages = ("granian", "uvicorn", "starlette", "sqlalchemy", "aiosqlite")
    versions = ", ".join(f"{p} {version(p)}" for p in packages)
    print(f"python {platform.python_version()}, {versions}")
    print(", ".join(f"{p} {version(p)}" for p in ("uvloop", "httptools", "rloop")))
    for server in servers:
        print(f"  {server.name:<16} {server.resolved()}")
    placement = f"server on CPU {SERVER_CPU}, wrk on CPU {WRK_CPU}" if pin else "no CPU pinning"
    print(
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s --latency after a "
        f"{args.warmup:g} s warm-up; {placement}; {os.cpu_count()} CPUs"
    )
    print(
        f"sqlite: {ITEM_COUNT} rows, WAL, SELECT by unique key; best of {args.repeats} "
        "runs per pair (highest req/s, with its p99); spread = best/worst req/s;\n"
        "cpu us/req = server process CPU time (user+sys, all threads) per request, "
        "lowest of the runs"
    )
    print()


def print_results(runs: list[Run], servers: list[Server]) -> None:
    by_pair: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_pair.setdefault((run.target, run.server), []).append(run)
    best = {
        pair: max(pair_runs, key=lambda r: r.result.requests_per_second).result
        for pair, pair_runs in by_pair.items()
    }
    cpu = {
        pair: min(r.cpu_us_per_request for r in pair_runs) for pair, pair_runs in by_pair.items()
    }
    # best/worst req/s over the repeats: how noisy the machine was for that pair.
    spread = {
        pair: max(r.result.requests_per_second for r in pair_runs)
        / min(r.result.requests_per_second for r in pair_runs)
        for pair, pair_runs in by_pair.items()
    }

    print(
        f"{'target':<8} {'server':<16} {'req/s':>8} {'p99 ms':>8} {'x raw':>6} "
        f"{'spread':>6} {'cpu us/req':>10} {'x raw':>6}"
    )
    for target in TARGETS:
        for server in servers:
            pair = (target.name, server.name)
            raw = ("raw", server.name)
            print(
                f"{target.name:<8} {server.name:<16} {best[pair].requests_per_second:>8.0f} "
                f"{best[pair].p99_ms:>8.2f} "
                f"{best[pair].requests_per_second / best[raw].requests_per_second:>6.2f} "
                f"{spread[pair]:>6.2f} {cpu[pair]:>10.1f} {cpu[pair] / cpu[raw]:>6.2f}"
            )

    pairs = [
        (granian, uvicorn)
        for granian in servers
        if granian.family == "granian"
        for uvicorn in servers
        if uvicorn.family == "uvicorn"
        and uvicorn.name.removeprefix("uvicorn") == granian.name.removeprefix("granian")
    ]
    for granian, uvicorn in pairs:
        print()
        print(f"{granian.name} / {uvicorn.name} (req/s > 1, p99 and cpu < 1: granian better)")
        print(f"{'target':<8} {'req/s':>8} {'p99':>8} {'cpu/req':>8}")
        for target in TARGETS:
            g = (target.name, granian.name)
            u = (target.name, uvicorn.name)
            print(
                f"{target.name:<8} "
                f"{best[g].requests_per_second / best[u].requests_per_second:>8.2f} "
                f"{best[g].p99_ms / best[u].p99_ms:>8.2f} {cpu[g] / cpu[u]:>8.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per pair; best is kept")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument(
        "--servers",
        default="granian,uvicorn",
        help=f"comma-separated, from: {', '.join(SERVERS)}",
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        sys.exit("wrk not found (apt-get install wrk)")
    servers = []
    for name in args.servers.split(","):
        if name not in SERVERS:
            sys.exit(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
        server = SERVERS[name]
        if missing := server.missing():
            sys.exit(f"{name} needs {', '.join(missing)}: pip install {' '.join(missing)}")
        servers.append(server)
    pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2

    print_header(servers, args, pin)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="asgi-bench-") as tmp:
        workdir = Path(tmp)
        database = workdir / "items.sqlite3"
        create_items_database(str(database))
        env = {
            **os.environ,
            SQLITE_PATH_ENV: str(database),
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        # Interleaved, so drift in the machine's load spreads over every pair.
        for repeat in range(1, args.repeats + 1):
            for target in TARGETS:
                for server in servers:
                    run = measure(
                        server,
                        target,
                        env=env,
                        workdir=workdir,
                        pin=pin,
                        duration=args.duration,
                        warmup=args.warmup,
                        connections=args.connections,
                    )
                    runs.append(run)
                    print(
                        f"run {repeat}: {target.name:<8} {server.name:<16} "
                        f"{run.result.requests_per_second:>10.0f} req/s  "
                        f"p99 {run.result.p99_ms:6.2f} ms  "
                        f"server CPU {run.cpu_us_per_request:7.1f} us/req",
                        flush=True,
                    )
    print()
    print_results(runs, servers)


if __name__ == "__main__":
    main()
