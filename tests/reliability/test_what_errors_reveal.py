"""What errors reveal (PROTOCOL §1): codes 1, 2, 800 and 805 carry the request
id and a plain sentence — never a host, a port, a driver's message or SQL
text. Each failure is triggered for real (Redis on a dead port, a database on
a dead port, a method and a route that raise with such text in their
exception) on every route family: the gateway, OAuth, the admin API, the
last-resort handler and ``/readyz``. The cause is in the server log under the
same request id."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache import SharedState
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from openplatform.config import Settings
from openplatform.errors import Code, entry
from openplatform.errors.internal import PLAIN_SENTENCES, internal_failure
from openplatform.errors.render import api_error_response
from openplatform.services import Services
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.database import Database
from openplatform.storage.errors import DatabaseUnavailable
from tests.conftest import TEST_SECRET_KEY, fresh_database_url
from tests.gateway.client import ApiClient

DEAD_REDIS = "redis://127.0.0.1:6390/0?socket_timeout=2"
DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:6391/openplatform"
# What must never reach a caller: addresses, ports, driver and SQL words.
FORBIDDEN = re.compile(
    r"127\.0\.0\.1|6390|6391|5432|6379|errno|error 111|refused|redis|asyncpg|sqlalchemy|"
    r"sqlite|postgres|psycopg|select |insert |password_hash|traceback|oserror|exception",
    re.IGNORECASE,
)
# A request id is random hex (or the caller's own): "…16390…" in one is no port.
REQUEST_ID = re.compile(r"request id [A-Za-z0-9._-]+")


def reveals(text: str, *request_ids: str) -> str | None:
    """What in ``text`` names the platform's insides, request ids left aside."""
    for request_id in request_ids:
        text = text.replace(request_id, "")
    found = FORBIDDEN.search(REQUEST_ID.sub("request id", text))
    return None if found is None else found.group()


# Text a raising method puts in its exception: it must stay in the log.
INSIDE = "connect to postgresql://postgres@127.0.0.1:5432: SELECT password_hash FROM users"


def assert_plain(response: httpx.Response, code: int) -> str:
    """The body has ``code``, the plain sentence and the request id, and
    nothing of the platform's insides. Returns the request id."""
    body = response.json()
    assert body["error_code"] == code, response.text
    request_id = response.headers["X-Request-Id"]
    detail = body["error_detail"]
    assert detail == f"{PLAIN_SENTENCES[Code(code)]} (request id {request_id})"
    # request_args echo what the caller sent: only the server's own words count.
    ours = {k: v for k, v in body.items() if k != "request_args"}
    assert not reveals(str(ours), request_id), ours
    assert not reveals(str(dict(response.headers)), request_id), response.headers
    if code in (Code.SERVICE_UNAVAILABLE, Code.DATABASE_ERROR):
        assert response.headers["Retry-After"] == "5"
    return request_id


def logged_under(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    """Everything the server logged about ``request_id`` (messages and tracebacks)."""
    texts = []
    for record in caplog.records:
        message = record.getMessage()
        if request_id in message:
            texts.append(message)
            if record.exc_info and record.exc_info[1] is not None:
                texts.append(repr(record.exc_info[1]))
    return "\n".join(texts)


@dataclass
class Platform:
    http: httpx.AsyncClient
    services: Services
    app: AppRecord | None

    def signed(self) -> ApiClient:
        assert self.app is not None
        return ApiClient(self.http, api_key=self.app.api_key, secret=self.app.secret)


async def _platform(
    database: Database, shared_state: SharedState, tmp_path: Path, app: AppRecord | None
) -> AsyncIterator[Platform]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url="sqlite:///unused",
        cache_url="memory://",
        issuer="http://testserver",
    )
    services = Services(settings, database, shared_state, "http://testserver")
    transport = httpx.ASGITransport(app=create_app(settings, services), client=("192.0.2.10", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield Platform(http, services, app)


@pytest.fixture
async def dead_redis(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    """A working SQLite database, Redis on a port where nothing listens."""
    database = Database(fresh_database_url("sqlite", request, tmp_path), SecretBox(TEST_SECRET_KEY))
    app = await database.apps.create(
        AppSettings(name="Leaks", grants=("client_credentials", "password"))
    )
    await database.users.create(username="alice", password="correct horse")
    state = RedisSharedState(DEAD_REDIS, prefix="leaks")
    try:
        async for platform in _platform(database, state, tmp_path, app):
            yield platform
    finally:
        await state.close()
        await database.close()


@pytest.fixture
async def working(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Platform]:
    """A working SQLite database and in-process cache, one app."""
    database = Database(fresh_database_url("sqlite", request, tmp_path), SecretBox(TEST_SECRET_KEY))
    app = await database.apps.create(AppSettings(name="Leaks"))
    try:
        async for platform in _platform(database, MemorySharedState("leaks"), tmp_path, app):
            yield platform
    finally:
        await database.close()


@pytest.fixture
async def dead_database(tmp_path: Path) -> AsyncIterator[Platform]:
    """PostgreSQL on a port where nothing listens, a working in-process cache."""
    database = Database(DEAD_POSTGRES, SecretBox(TEST_SECRET_KEY))
    try:
        async for platform in _platform(database, MemorySharedState("leaks"), tmp_path, None):
            yield platform
    finally:
        await database.close()


async def test_redis_down_reveals_nothing(
    dead_redis: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    http = dead_redis.http
    gateway = await dead_redis.signed().call("users.getInfo", {"uids": "1", "fields": "username"})
    assert dead_redis.app is not None
    password_grant = await http.post(
        "/oauth/2.0/token",
        data={"grant_type": "password", "username": "alice", "password": "wrong"},
        auth=(dead_redis.app.api_key, dead_redis.app.secret),
    )
    ready = await http.get("/readyz")
    for response in (gateway, password_grant):
        request_id = assert_plain(response, 2)
        assert "6390" in logged_under(caplog, request_id)
    assert ready.status_code == 503
    body = ready.json()
    assert body["error_detail"] == (
        f"database ok, cache unavailable (request id {ready.headers['X-Request-Id']})"
    )
    assert not reveals(ready.text)


async def test_database_down_reveals_nothing(
    dead_database: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    http = dead_database.http
    gateway = await ApiClient(http, api_key="ak_whatever", secret="s").call("users.getInfo")
    bearer = await http.get(
        "/rest/2.0/users.getLoggedInUser", headers={"Authorization": "Bearer tok"}
    )
    token = await http.post(
        "/oauth/2.0/token", data={"grant_type": "client_credentials"}, auth=("ak_x", "secret")
    )
    introspect = await http.post("/oauth/2.0/introspect", data={"token": "t"}, auth=("ak_x", "s"))
    authorize = await http.get(
        "/oauth/2.0/authorize", params={"response_type": "code", "client_id": "ak_x"}
    )
    admin = await http.get("/admin/api/apps/1", headers={"Authorization": "Bearer x"})
    stats = await http.get("/admin/api/stats?app_id=1", headers={"Authorization": "Bearer x"})
    for response in (gateway, bearer, token, introspect, authorize, admin, stats):
        request_id = assert_plain(response, 2)
        assert "6391" in logged_under(caplog, request_id), response.request.url
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error_detail"].startswith("database unavailable, cache ok (request id ")
    assert not reveals(ready.text)


async def test_unexpected_errors_reveal_nothing(
    dead_redis: Platform, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code 1 from the gateway (a read under a method raises) and from the
    last-resort handler (an admin route raises), the exception text full of
    the platform's insides."""

    async def raising(*args: object, **kwargs: object) -> object:
        raise RuntimeError(INSIDE)

    database = dead_redis.services.database
    monkeypatch.setattr(database.tokens, "find_access_token", raising)
    gateway = await dead_redis.http.get(
        "/rest/2.0/users.getLoggedInUser", headers={"Authorization": "Bearer tok"}
    )
    monkeypatch.setattr(database.admin_tokens, "verify", raising)
    admin = await dead_redis.http.get("/admin/api/apps/1", headers={"Authorization": "Bearer x"})
    for response in (gateway, admin):
        assert response.status_code == 500
        request_id = assert_plain(response, 1)
        assert INSIDE in logged_under(caplog, request_id)


async def test_data_store_errors_reveal_nothing(
    working: Platform, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """805 and 800 from the data store (PROTOCOL §4 "data"), alone and inside
    ``batch.run``: the store fails with a driver's message (what the engine
    makes of a refused connection) and with an unexpected exception."""
    caplog.set_level(logging.INFO)
    api = working.signed()
    store = working.services.database.data_store
    outage = DatabaseUnavailable(
        "database unavailable: Multiple exceptions: [Errno 111] Connect call failed "
        "('127.0.0.1', 6391)"
    )
    feed = json.dumps(["method=data.getObjectTypes"])
    for code, failure in ((805, outage), (800, RuntimeError(INSIDE))):

        async def failing(*args: object, failure: Exception = failure, **kwargs: object) -> object:
            raise failure

        monkeypatch.setattr(store, "get_types", failing)
        alone = await api.call("data.getObjectTypes")
        assert alone.status_code == entry(code).http_status, alone.text  # 503, 400
        request_id = assert_plain(alone, code)
        assert str(failure) in logged_under(caplog, request_id)

        batch = await api.call("batch.run", {"method_feed": feed})
        assert batch.status_code == 200, batch.text
        request_id = batch.headers["X-Request-Id"]
        (item,) = batch.json()
        assert item["error_code"] == code, item
        assert item["error_detail"] == f"{PLAIN_SENTENCES[Code(code)]} (request id {request_id})"
        assert not reveals(str(item), request_id), item
        assert str(failure) in logged_under(caplog, request_id)


@pytest.mark.parametrize(
    "code", [Code.UNKNOWN, Code.SERVICE_UNAVAILABLE, Code.DATA_STORE_UNKNOWN, Code.DATABASE_ERROR]
)
def test_every_internal_code_is_a_plain_sentence(
    code: Code, caplog: pytest.LogCaptureFixture
) -> None:
    """The one mapping the data store uses for 800 and 805 too: JSON and XML,
    English and Chinese, the cause logged under the request id."""
    caplog.set_level(logging.INFO)
    cause = OSError(f"[Errno 111] {INSIDE}")
    for fmt in ("json", "xml"):
        for lang in ("en", "zh"):
            error = internal_failure(code, "rid-123", cause)
            response = api_error_response(error, lang=lang, fmt=fmt, request_id="rid-123")
            text = bytes(response.body).decode()
            assert "rid-123" in text
            assert PLAIN_SENTENCES[code] in text
            assert not reveals(text), text
    assert INSIDE in logged_under(caplog, "rid-123")
