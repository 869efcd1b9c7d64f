"""A real HTTP server (uvicorn in a background thread) on 127.0.0.1 and a free
port, for the client libraries that speak HTTP themselves."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests
import uvicorn

from openplatform.app import create_app
from openplatform.config import Settings
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from tests.conftest import TEST_SECRET_KEY, run_in_thread
from tests.oauth.browser import find_form
from tests.oauth.conftest import PASSWORD, REDIRECT_URI, USERNAME


@dataclass(frozen=True)
class LiveServer:
    issuer: str
    app: AppRecord

    def url(self, path: str) -> str:
        return self.issuer + path


async def _seed(url: str) -> AppRecord:
    async with Database(url, SecretBox(TEST_SECRET_KEY)) as db:
        await db.users.create(USERNAME, PASSWORD)
        return await db.apps.create(
            AppSettings.from_mapping(
                {"name": "Interop", "redirect_uris": [REDIRECT_URI], "scopes": ["basic", "email"]}
            )
        )


@contextmanager
def serving(database_url: str, data_dir: Path) -> Iterator[str]:
    """The application on ``database_url``, served by uvicorn on 127.0.0.1
    and a free port: its base URL (which is also its issuer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings.from_env(
        {
            "OPENPLATFORM_DATABASE_URL": database_url,
            "OPENPLATFORM_DATA_DIR": str(data_dir),
            "OPENPLATFORM_SECRET_KEY": TEST_SECRET_KEY,
            "OPENPLATFORM_ISSUER": issuer,
        }
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in time"
        time.sleep(0.02)
    try:
        yield issuer
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


@contextmanager
def live_server(database_url: str, data_dir: Path) -> Iterator[LiveServer]:
    app_record = run_in_thread(_seed(database_url))
    with serving(database_url, data_dir) as issuer:
        yield LiveServer(issuer, app_record)


def sign_in_and_approve(session: requests.Session, authorize_url: str) -> str:
    """What a person does in the browser: the redirect URL the app receives."""
    response = session.get(authorize_url, allow_redirects=False)
    for _ in range(3):
        if response.status_code in (302, 303):
            location: str = response.headers["Location"]
            return location
        assert response.status_code == 200, response.text
        form = find_form(response.text)
        if ("action", "login") in form.fields:
            data = form.data(username=USERNAME, password=PASSWORD)
        else:
            data = form.data(action="approve")
        response = session.post(
            urljoin(response.url, form.action), data=data, allow_redirects=False
        )
    raise AssertionError("no redirect back to the app")
