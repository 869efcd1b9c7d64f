"""The peers of the OAuth cases: django-oauth-toolkit and an Authlib + Flask
server (``peers/``), each installed by the bench into its own virtual
environment under ``bench/.peers/`` and served by gunicorn with one worker
of its default kind (``sync``: one request at a time, the connection closed
after it), as a new user would run them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from seed import AppCredentials, TokenCredentials

__all__ = ["PEERS", "Peer", "PeerData"]

BENCH_DIR = Path(__file__).resolve().parent
PEERS_HOME = BENCH_DIR / ".peers"


@dataclass(frozen=True)
class PeerData:
    """What a peer's seed wrote: its clients and tokens, and the database file."""

    database: Path
    apps: list[AppCredentials]
    tokens: list[TokenCredentials]


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    source: str  # folder under peers/
    wsgi: str  # gunicorn's application
    database_env: str  # the variable naming its SQLite file
    token_path: str
    introspect_path: str

    @property
    def venv(self) -> Path:
        return PEERS_HOME / self.name

    @property
    def directory(self) -> Path:
        return BENCH_DIR / "peers" / self.source

    def install(self) -> None:
        """Create the virtual environment and install the requirements, once
        (again when they change). Raises ``RuntimeError`` with pip's output."""
        stamp = (
            self.venv
            / f".installed-{hashlib.sha256(' '.join(self.requirements).encode()).hexdigest()[:16]}"
        )
        if stamp.exists():
            return
        print(f"installing {self.name} into {self.venv} (once) ...", flush=True)
        python = self.venv / "bin" / "python"
        for command in (
            [sys.executable, "-m", "venv", "--clear", str(self.venv)],
            [str(python), "-m", "pip", "install", "--quiet", *self.requirements],
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        stamp.touch()

    def versions(self) -> dict[str, str]:
        done = subprocess.run(
            [str(self.venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
            capture_output=True,
            text=True,
            check=True,
        )
        wanted = {r.split(">")[0].split("=")[0].lower() for r in self.requirements}
        return {
            p["name"]: p["version"] for p in json.loads(done.stdout) if p["name"].lower() in wanted
        }

    def seed(self, database: Path, clients: int, tokens: int, *options: str) -> PeerData:
        """Create the peer's tables, ``clients`` clients and ``tokens`` tokens."""
        out = database.with_suffix(".json")
        subprocess.run(
            [
                str(self.venv / "bin" / "python"),
                "seed.py",
                str(database),
                str(clients),
                str(tokens),
                str(out),
                *options,
            ],
            cwd=self.directory,
            check=True,
            capture_output=True,
        )
        written = json.loads(out.read_text())
        apps = [AppCredentials(client_id, secret) for client_id, secret in written["clients"]]
        issued = [
            TokenCredentials(AppCredentials(client_id, secret), token)
            for client_id, secret, token in written["tokens"]
        ]
        return PeerData(database, apps, issued)

    def command(self, port: int) -> list[str]:
        return [
            str(self.venv / "bin" / "gunicorn"),
            "--workers=1",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
            self.wsgi,
        ]


PEERS = {
    peer.name: peer
    for peer in (
        Peer(
            "authlib",
            ("authlib>=1.3,<2", "flask>=3,<4", "flask-sqlalchemy>=3.1,<4", "gunicorn>=22"),
            source="authlib_flask",
            wsgi="server:create_app()",
            database_env="AUTHLIB_BENCH_DB",
            token_path="/oauth/token",
            introspect_path="/oauth/introspect",
        ),
        Peer(
            "dot",
            ("django-oauth-toolkit>=3,<4", "django>=5,<6", "gunicorn>=22"),
            source="dot",
            wsgi="wsgi:application",
            database_env="DOT_BENCH_DB",
            token_path="/o/token/",
            introspect_path="/o/introspect/",
        ),
    )
}
