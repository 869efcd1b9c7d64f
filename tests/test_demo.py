"""README command 1: ``openplatform serve --demo`` creates a demo app and user
once, prints working credentials, and serves."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
        env["OPENPLATFORM_DATA_DIR"] = str(data_dir)
        self.log = data_dir.parent / f"serve-{self.port}.log"
        self.log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "openplatform", "serve", "--demo", "--port", str(self.port)],
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"serve did not answer: {self.log.read_text()}")

    @property
    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def served(data_dir: Path) -> Iterator[Served]:
    server = Served(data_dir)
    yield server
    server.stop()


def test_demo_credentials_work(served: Served) -> None:
    out = served.output
    api_key = re.search(r"api_key \(client_id\)\s+(\S+)", out)
    secret = re.search(r"secret\s+([0-9a-f]{32,})", out)
    user = re.search(r"Demo user\s+(\S+) / (\S+)\s+\(uid (\d+)\)", out)
    call = re.search(r"curl '(\S+users\.getLoggedInUser\S+)'", out)
    assert api_key and secret and user and call, out

    response = httpx.get(call.group(1))
    assert response.json() == {"uid": int(user.group(3))}

    token = httpx.post(
        f"{served.base}/oauth/2.0/token",
        data={"grant_type": "client_credentials"},
        auth=(api_key.group(1), secret.group(1)),
    )
    assert token.status_code == 200, token.text
    assert token.json()["token_type"] == "Bearer"

    authorize = re.search(r"(http\S+/oauth/2\.0/authorize\?\S+)", out)
    assert authorize
    login = httpx.get(authorize.group(1))
    assert login.status_code == 200
    assert "password" in login.text

    callback = httpx.get(f"{served.base}/demo/callback?code=abc&state=demo")
    assert callback.status_code == 200
    assert "abc" in callback.text


def test_second_start_reuses_the_demo(data_dir: Path) -> None:
    first = Served(data_dir)
    first.stop()
    second = Served(data_dir)
    second.stop()
    keys = [re.search(r"api_key \(client_id\)\s+(\S+)", s.output) for s in (first, second)]
    users = [re.search(r"Demo user\s+(.+)\n", s.output) for s in (first, second)]
    assert keys[0] and keys[1] and users[0] and users[1]
    assert keys[0].group(1) == keys[1].group(1)
    assert users[0].group(1) == users[1].group(1)


def test_serve_refuses_a_port_in_use(served: Served, tmp_path: Path) -> None:
    """A second server on the same port would silently share it (SO_REUSEPORT)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    env["OPENPLATFORM_DATA_DIR"] = str(tmp_path / "other")
    second = subprocess.run(
        [sys.executable, "-m", "openplatform", "serve", "--port", str(served.port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert f"127.0.0.1:{served.port} is already in use" in second.stderr
    assert httpx.get(f"{served.base}/healthz").status_code == 200
