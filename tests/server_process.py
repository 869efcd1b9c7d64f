"""``openplatform serve`` as a real OS process on a free loopback port, for
tests that need what only a real server shows (its ASGI server's own
behaviour, several worker processes, signals)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

OPENPLATFORM = str(Path(sys.executable).with_name("openplatform"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_process(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """Start ``openplatform serve --port <free> *args`` with ``env``; yield its
    base URL once ``/healthz`` answers; stop it (SIGTERM, then SIGKILL)."""
    with server_process(env, log, *args) as (_, base_url):
        yield base_url


@contextmanager
def server_process(
    env: dict[str, str], log: Path, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """As :func:`serve_process`, yielding the process too (for tests that
    signal it themselves); stopped at the end unless it has exited."""
    port = free_port()
    with log.open("w") as out:
        server = subprocess.Popen(
            [OPENPLATFORM, "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server did not start in time"
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield server, base_url
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def tree_rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """The resident memory of a process and all its descendants (Linux);
    ``field="VmHWM"``: the most each has ever had resident."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
        for line in status.splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1]) * 1024
    return total
