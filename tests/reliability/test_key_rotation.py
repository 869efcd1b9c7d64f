"""Key rotation (issue 12, secrets): ``OPENPLATFORM_SECRET_KEY=new,old`` and
``openplatform secrets rotate``. Calls signed with existing secrets (the app
secret and a session secret) keep working on a running server before,
during and after the rotation, and after the old key is dropped."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx

from openplatform.config import Settings
from openplatform.gateway.signature import sign
from openplatform.storage.apps import AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.migrate import upgrade_async
from openplatform.storage.models import AccessToken, App
from tests.conftest import run_in_thread
from tests.server_process import OPENPLATFORM, serve_process

OLD, NEW = "old-key-" + "a" * 32, "new-key-" + "b" * 32
APPS = 30  # rotated one per transaction below: the rotation takes a while


def signed(params: dict[str, str], secret: str) -> dict[str, str]:
    full = {"timestamp": str(int(time.time())), "call_id": str(time.time_ns()), **params}
    full["sig"] = sign(list(full.items()), secret)
    return full


class Caller:
    """Signed calls with the app secret and with a session secret, in a loop."""

    def __init__(self, base_url: str, api_key: str, secret: str, session: tuple[str, str]):
        self.base_url, self.api_key, self.secret, self.session = base_url, api_key, secret, session
        self.answers: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def once(self) -> list[str]:
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            return self._call(http)

    def _call(self, http: httpx.Client) -> list[str]:
        as_app = signed(
            {
                "method": "application.getPublicInfo",
                "api_key": self.api_key,
                "application_api_key": self.api_key,
            },
            self.secret,
        )
        session_key, session_secret = self.session
        as_user = signed(
            {
                "method": "users.getLoggedInUser",
                "api_key": self.api_key,
                "session_key": session_key,
            },
            session_secret,
        )
        return [
            http.post("/rest/2.0/", data=params).headers["X-Error-Code"]
            for params in (as_app, as_user)
        ]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            while not self._stop.is_set():
                self.answers += self._call(http)

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def rotate(env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [OPENPLATFORM, "secrets", "rotate", "--batch-size", "1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, int] = json.loads(done.stdout)
    return report


def test_calls_keep_working_through_a_key_rotation(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OPENPLATFORM_DATA_DIR": str(tmp_path),
        "OPENPLATFORM_DATABASE_URL": f"sqlite:///{tmp_path / 'op.db'}",
        "OPENPLATFORM_CACHE_URL": "memory://",
        "OPENPLATFORM_SECRET_KEY": OLD,
    }
    env.pop("OPENPLATFORM_ISSUER", None)

    async def seed() -> tuple[str, str, str, str, list[str]]:
        await upgrade_async(Settings.from_env(env))
        async with Database(env["OPENPLATFORM_DATABASE_URL"], SecretBox(OLD)) as db:
            apps = [await db.apps.create(AppSettings(name=f"A{i}")) for i in range(APPS)]
            user = await db.users.create("alice", "correct horse")
            app = apps[0]
            grant = await db.tokens.create_grant(app.id, user.uid, "basic", "authorization_code")
            issued = await db.tokens.issue(grant, app.id, user.uid, "basic", 3600, None, True)
            assert issued.session_key and issued.session_secret
            from sqlalchemy import select

            async with db.sessions.read() as session:
                stored = list(await session.scalars(select(App.secret_encrypted)))
                stored += [
                    s
                    for s in await session.scalars(select(AccessToken.session_secret_encrypted))
                    if s
                ]
            return app.api_key, app.secret, issued.session_key, issued.session_secret, stored

    api_key, secret, session_key, session_secret, before = run_in_thread(seed())
    rotating = {**env, "OPENPLATFORM_SECRET_KEY": f"{NEW},{OLD}"}
    with serve_process(rotating, tmp_path / "server.log") as base_url:
        caller = Caller(base_url, api_key, secret, (session_key, session_secret))
        assert caller.once() == ["0", "0"]
        with caller:
            report = rotate(rotating)
            time.sleep(0.2)
        assert report == {"reencrypted": APPS + 1, "current": 0}
        assert caller.answers and set(caller.answers) == {"0"}, caller.answers[:10]
        assert rotate(rotating) == {"reencrypted": 0, "current": APPS + 1}

    async def stored_now() -> list[str]:
        async with Database(env["OPENPLATFORM_DATABASE_URL"], SecretBox(NEW)) as db:
            from sqlalchemy import select

            async with db.sessions.read() as session:
                rows = list(await session.scalars(select(App.secret_encrypted)))
                return rows + [
                    s
                    for s in await session.scalars(select(AccessToken.session_secret_encrypted))
                    if s
                ]

    after = run_in_thread(stored_now())
    assert not set(before) & set(after)  # every ciphertext was rewritten
    only_new = {**env, "OPENPLATFORM_SECRET_KEY": NEW}
    with serve_process(only_new, tmp_path / "server-new.log") as base_url:
        caller = Caller(base_url, api_key, secret, (session_key, session_secret))
        assert caller.once() == ["0", "0"]
