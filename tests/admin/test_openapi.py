"""``GET /admin/api/openapi.json`` (PROTOCOL §5): the admin API described as
OpenAPI 3.1 from the declarations that validate its requests, and the
running server held to that description by schemathesis — requests made
from the document (valid and invalid ones) never get a 500, and every answer
matches the status codes, headers and schemas the document declares."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from openplatform.admin.api import OPERATIONS
from openplatform.config import Settings
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database
from openplatform.storage.migrate import upgrade_async
from tests.conftest import run_in_thread
from tests.server_process import serve_process

EXAMPLES = 10
CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
)


async def _seed(settings: Settings) -> str:
    """The schema at head, an app, a user; an admin token."""
    await upgrade_async(settings)
    async with Database.from_settings(settings) as database:
        await database.apps.create(AppSettings(name="Seeded"))
        await database.users.create("seeded", "pw-seeded-1")
        return await database.admin_tokens.create("schemathesis")


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real server on a fresh SQLite file, with an app, a user and an admin
    token: its base URL and the token."""
    data = tmp_path_factory.mktemp("openapi")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    env["OPENPLATFORM_DATA_DIR"] = str(data / "data")
    token = run_in_thread(_seed(Settings.from_env(env)))
    with serve_process(env, data / "serve.log") as base:
        yield base, token


@pytest.fixture(scope="module")
def admin_schema(admin_server: tuple[str, str]) -> schemathesis.BaseSchema:
    base, _token = admin_server
    return schemathesis.openapi.from_url(f"{base}/admin/api/openapi.json")


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda mode: mode.value)
@pytest.mark.parametrize(
    ("method", "path"), [(op.method, op.path) for op in OPERATIONS], ids=lambda value: value
)
def test_every_answer_follows_the_document(
    admin_schema: schemathesis.BaseSchema,
    admin_server: tuple[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    """Requests made from the document, valid ones and (negative mode) ones
    the document rules out, which must be refused with a 4xx."""
    _base, token = admin_server
    operation = admin_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=list(CHECKS))

    run()


def test_the_document_is_the_declarations(admin_server: tuple[str, str]) -> None:
    """Every declared operation is in the document with its body, parameters
    and the limits the validator applies; nothing else is."""
    base, _token = admin_server
    response = httpx.get(f"{base}/admin/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    listed = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    assert listed == {(op.method, op.path) for op in OPERATIONS}
    settings_schema = document["components"]["schemas"]["AppSettings"]
    assert settings_schema["required"] == ["name"]
    assert settings_schema["additionalProperties"] is False
    ttl = settings_schema["properties"]["access_token_ttl_s"]
    assert (ttl["minimum"], ttl["maximum"], ttl["default"]) == (1, 30 * 86400, 3600)
    scopes = settings_schema["properties"]["scopes"]["items"]["enum"]
    assert scopes == ["basic", "email", "mobile", "data"]
    create = document["paths"]["/admin/api/apps"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AppSettings"
    }
    assert {"201", "400", "401"} <= set(create["responses"])
    assert "114" in create["responses"]["400"]["description"]
    get = document["paths"]["/admin/api/apps/{app_id}"]["get"]
    assert "900" in get["responses"]["404"]["description"]


def test_the_declared_limits_are_the_enforced_ones(admin_server: tuple[str, str]) -> None:
    """One value past each documented bound is refused with 100 naming the field."""
    base, token = admin_server
    headers = {"Authorization": f"Bearer {token}"}
    document = httpx.get(f"{base}/admin/api/openapi.json").json()
    properties = document["components"]["schemas"]["AppSettings"]["properties"]
    for name, schema_ in properties.items():
        if schema_.get("type") != "integer":
            continue
        for bad in (schema_["minimum"] - 1, schema_["maximum"] + 1):
            answer = httpx.post(
                f"{base}/admin/api/apps", json={"name": "x", name: bad}, headers=headers
            )
            assert answer.status_code == 400, (name, bad, answer.text)
            assert answer.json()["error_code"] == 100
            assert name in answer.json()["error_detail"]


def test_the_reference_page_renders_the_document(admin_server: tuple[str, str]) -> None:
    base, _token = admin_server
    page = httpx.get(f"{base}/docs/admin-api")
    assert page.status_code == 200
    for operation in OPERATIONS:
        assert operation.path in page.text
        assert operation.summary in page.text
    assert "access_token_ttl_s" in page.text
