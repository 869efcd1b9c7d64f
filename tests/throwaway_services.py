"""PostgreSQL and Redis servers of a test's own, on free loopback ports, for
tests that stop, restart or kill a dependency — the machine's shared servers
are never touched.

Both skip (or fail, under ``OPENPLATFORM_REQUIRE_SERVICES=1``) when the
server binaries are missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.server_process import free_port
from tests.services import service_unavailable

__all__ = ["ThrowawayPostgres", "ThrowawayRedis", "throwaway_postgres", "throwaway_redis"]


def _wait_for_port(port: int, *, open_: bool, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == open_:
            return
        time.sleep(0.05)
    state = "listen" if open_ else "stop listening"
    raise TimeoutError(f"port {port} did not {state} within {timeout_s} s")


class ThrowawayRedis:
    """``redis-server`` on a free port that keeps nothing on disk; it can be
    stopped and started again on the same port (empty, like a restarted
    cache without persistence)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_for_port(self.port, open_=True)

    def stop(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as in a crash."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
            _wait_for_port(self.port, open_=False)


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own (``initdb`` into a temporary
    directory, trust auth, user ``postgres``) that can be stopped and started
    on the same port. As root, the server runs as the ``postgres`` user."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self._bin = _postgres_bin()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        command = [str(self._bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self._run(
            "initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options,
            "-l", str(self.workdir / "server.log"), "-w", "start",
        )  # fmt: skip
        _wait_for_port(self.port, open_=True)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session at once; ``immediate`` is a crash."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")
        _wait_for_port(self.port, open_=False)


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        service_unavailable("PostgreSQL binaries", "no /usr/lib/postgresql/*/bin/initdb")
    return found[-1].parent


@contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server", "not on PATH")
    with tempfile.TemporaryDirectory(prefix="op-redis-") as workdir:
        server = ThrowawayRedis(Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    with tempfile.TemporaryDirectory(prefix="op-pg-") as workdir:
        os.chmod(workdir, 0o755)
        server = ThrowawayPostgres(Path(workdir) / "cluster")
        server.init()
        server.start()
        try:
            yield server
        finally:
            with suppress(subprocess.CalledProcessError, TimeoutError):
                server.stop("immediate")
