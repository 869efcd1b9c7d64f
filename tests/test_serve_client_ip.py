"""Both ASGI servers ``serve`` offers see the same client address: the
socket peer, or — only from a proxy in ``OPENPLATFORM_TRUSTED_PROXIES`` —
``X-Forwarded-For`` (PROTOCOL §3.3). A review found uvicorn's own
``proxy_headers`` default believing any loopback peer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from openplatform.config import Settings
from openplatform.gateway.signature import sign
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.migrate import upgrade_async
from tests.conftest import TEST_SECRET_KEY, run_in_thread
from tests.server_process import serve_process

METHOD = "application.getPublicInfo"


def allowlisted_app(env: dict[str, str]) -> AppRecord:
    """An app that may be called from 10.1.2.3 only."""

    async def create() -> AppRecord:
        await upgrade_async(Settings.from_env(env))
        async with Database(env["OPENPLATFORM_DATABASE_URL"], SecretBox(TEST_SECRET_KEY)) as db:
            settings = AppSettings.from_mapping({"name": "IP", "ip_allowlist": ["10.1.2.3/32"]})
            return await db.apps.create(settings)

    return run_in_thread(create())


def call(base_url: str, app: AppRecord, forwarded_for: str) -> int:
    params = {"api_key": app.api_key, "timestamp": str(int(time.time())), "method": METHOD}
    params["application_id"] = str(app.id)
    params["sig"] = sign(params.items(), app.secret)
    response = httpx.post(
        f"{base_url}/rest/2.0/", data=params, headers={"X-Forwarded-For": forwarded_for}
    )
    return int(response.headers["X-Error-Code"])


@pytest.mark.parametrize("server", ["granian", "uvicorn"])
@pytest.mark.parametrize(("trusted", "expected"), [("", 5), ("127.0.0.1", 0)])
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    tmp_path: Path, server: str, trusted: str, expected: int
) -> None:
    env = {
        **os.environ,
        "OPENPLATFORM_DATA_DIR": str(tmp_path),
        "OPENPLATFORM_DATABASE_URL": f"sqlite:///{tmp_path / 'op.db'}",
        "OPENPLATFORM_SECRET_KEY": TEST_SECRET_KEY,
        "OPENPLATFORM_TRUSTED_PROXIES": trusted,
    }
    env.pop("OPENPLATFORM_ISSUER", None)
    app = allowlisted_app(env)
    with serve_process(env, tmp_path / "server.log", "--server", server) as base_url:
        assert call(base_url, app, "10.1.2.3") == expected
        assert call(base_url, app, "10.9.9.9") == 5
