"""The application shell: health, readiness, metrics, the public catalogue,
request ids and the last-resort error (PROTOCOL §1, §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import Route

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.config import Settings
from openplatform.errors import CATALOGUE, entry
from openplatform.services import Services
from openplatform.storage.database import Database


@pytest.fixture
async def services(database: Database, tmp_path: Path) -> Services:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    return Services(settings, database, MemorySharedState(prefix="t"), "http://testserver")


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services.settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(response.headers["X-Request-Id"]) >= 16


async def test_request_id_is_echoed_when_sane(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    response = await client.get("/healthz", headers={"X-Request-Id": "<script>"})
    assert response.headers["X-Request-Id"] != "<script>"


async def test_readyz_checks_database_and_cache(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok"}


async def test_readyz_unavailable_when_database_is_down(tmp_path: Path) -> None:
    from openplatform.storage.crypto import SecretBox

    # Nothing listens on port 1: the database cannot be reached.
    broken = Database("postgresql://postgres@127.0.0.1:1/none", SecretBox("k"))
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    services = Services(settings, broken, MemorySharedState(prefix="t"), "http://t")
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/readyz")
    await broken.close()
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == 2
    assert body["error_msg"] == entry(2).en
    assert "database unavailable" in body["error_detail"]
    assert response.headers["Retry-After"] == "5"


async def test_metrics_count_requests_by_error_code(client: httpx.AsyncClient) -> None:
    await client.get("/no-such-page")
    text = (await client.get("/metrics")).text
    assert "openplatform_request_duration_seconds_bucket" in text
    assert 'openplatform_requests_total{api_method="",error_code="3",route="other"}' in text


async def test_error_codes_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/error-codes")
    assert response.status_code == 200
    assert "public" in response.headers["Cache-Control"]
    codes = response.json()
    assert len(codes) == len(CATALOGUE) == 46
    by_code = {item["code"]: item for item in codes}
    assert by_code[10002] == {
        "code": 10002,
        "family": "oauth",
        "error": "invalid_grant",
        "http_status": 400,
        "en": "Invalid grant",
        "zh": "非法的授权信息",
    }
    assert by_code[4]["http_status"] == 429
    assert by_code[4]["error"] is None
    again = await client.get(
        "/api/error-codes", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304


async def test_unknown_path_is_code_3(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere?lang=zh")
    assert response.status_code == 404
    assert response.json()["error_code"] == 3
    assert response.json()["error_msg"] == entry(3).zh


async def test_unexpected_exception_is_code_1_without_traceback(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(request: Request) -> None:
        raise RuntimeError("secret internals")

    app = create_app(services.settings, services)
    app.router.routes.append(Route("/explode", explode))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        response = await c.get("/explode", headers={"X-Request-Id": "req-42"})
    assert response.status_code == 500
    body = response.json()
    assert body["error_code"] == 1
    assert body["error_msg"] == "Unknown error"
    assert "req-42" in body["error_detail"]
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["X-Error-Code"] == "1"
    assert "secret internals" in caplog.text


async def test_wrong_http_method_is_400_with_allow(client: httpx.AsyncClient) -> None:
    """PROTOCOL §1: 100 → HTTP 400 ("everything else"), never a bare 405."""
    response = await client.delete("/api/error-codes")
    assert response.status_code == 400
    assert response.json()["error_code"] == 100
    assert "GET" in response.headers["Allow"]


async def test_wrong_http_method_on_oauth_is_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/oauth/2.0/token")
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["error_code"]) == ("invalid_request", 10000)
    assert "POST" in response.headers["Allow"]


async def test_metrics_label_api_calls_by_method_and_code(client: httpx.AsyncClient) -> None:
    """PROTOCOL §5: requests by method and error code (only registered names)."""
    await client.get("/rest/2.0/users.getInfo?api_key=ak_nobody&uids=1")
    await client.get("/rest/2.0/no.suchMethod?api_key=ak_nobody")
    text = (await client.get("/metrics")).text
    assert 'api_method="users.getInfo",error_code="101",route="api"' in text
    assert "no.suchMethod" not in text


@pytest.mark.parametrize("own_process", [False, True])
async def test_a_server_process_freezes_its_start_up_heap(
    database: Database, tmp_path: Path, own_process: bool
) -> None:
    """``openplatform serve`` moves what start-up made out of the cyclic
    collector's sight (no full collection over it stalls requests); an app
    sharing its process (tests, embedding) leaves the collector alone."""
    import gc

    settings = Settings(data_dir=tmp_path, database_url="", cache_url="memory://", issuer=None)
    services = Services(settings, database, MemorySharedState(prefix="gc"), "http://testserver")
    app = create_app(settings, services, own_process=own_process)
    gc.unfreeze()
    try:
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
        assert (frozen > 10_000) is own_process
    finally:
        gc.unfreeze()
