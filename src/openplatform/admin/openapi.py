"""The admin API as an OpenAPI 3.1 document (PROTOCOL §5,
``GET /admin/api/openapi.json``), built from the declarations the requests
are validated with (:data:`openplatform.admin.api.OPERATIONS`)."""

from __future__ import annotations

from collections.abc import Sequence

from openplatform.admin.operations import LANG, Operation
from openplatform.errors import Code, entry
from openplatform.json_schema import JsonSchema, Object, Shape

__all__ = ["openapi_document"]

_ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "title": "Error",
    "description": "An error of the API catalogue (GET /api/error-codes).",
    "properties": {
        "error_code": {"type": "integer", "description": "the catalogue's code"},
        "error_msg": {"type": "string", "description": "the catalogue's text (lang=zh: Chinese)"},
        "error_detail": {"type": "string", "description": "specifics, e.g. the field at fault"},
        "request_args": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"key": {"type": "string"}, "value": {"type": "string"}},
                "required": ["key", "value"],
            },
        },
    },
    "required": ["error_code", "error_msg", "request_args"],
}
_HEADERS: JsonSchema = {
    "X-Error-Code": {
        "description": "the catalogue's code; 0 on success",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "X-Request-Id": {
        "description": "the request's id (also in the server log)",
        "required": True,
        "schema": {"type": "string"},
    },
}
# Every operation may answer these: no or a wrong admin token, a malformed
# request, an outage of the database.
_ALWAYS = (Code.INVALID_ACCESS_TOKEN, Code.INVALID_PARAMETER, Code.SERVICE_UNAVAILABLE)


class _Components:
    def __init__(self) -> None:
        self.schemas: dict[str, JsonSchema] = {"Error": _ERROR_SCHEMA}

    def ref(self, shape: Shape) -> JsonSchema:
        """A named object goes into components once and is referred to."""
        if isinstance(shape, Object) and shape.title:
            self.schemas.setdefault(shape.title, shape.json_schema())
            return {"$ref": f"#/components/schemas/{shape.title}"}
        return shape.json_schema()


def _parameters(operation: Operation) -> list[JsonSchema]:
    parameters: list[JsonSchema] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": param.description,
            "schema": param.shape.json_schema(),
        }
        for name, param in operation.path_params.items()
    ]
    parameters.append(
        {
            "name": "lang",
            "in": "query",
            "required": False,
            "description": LANG.description,
            "schema": LANG.json_schema(),
        }
    )
    if operation.query is not None:
        for name, shape in operation.query.properties.items():
            parameter: JsonSchema = {
                "name": name,
                "in": "query",
                "required": name in operation.query.required,
                "schema": shape.json_schema(),
            }
            if shape.description:
                parameter["description"] = shape.description
            parameters.append(parameter)
    return parameters


def _error_responses(operation: Operation) -> dict[str, JsonSchema]:
    codes = list(dict.fromkeys((*_ALWAYS, *operation.errors)))
    if operation.path_params:
        codes.extend(param.code for param in operation.path_params.values())
    by_status: dict[int, list[int]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(entry(code).http_status, []).append(int(code))
    responses: dict[str, JsonSchema] = {}
    for status, status_codes in sorted(by_status.items()):
        described = "; ".join(f"{code} {entry(code).en}" for code in status_codes)
        response: JsonSchema = {
            "description": described,
            "headers": _HEADERS,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 503:
            response["headers"] = {
                **_HEADERS,
                "Retry-After": {"required": True, "schema": {"type": "string"}},
            }
        responses[str(status)] = response
    return responses


def _operation(operation: Operation, components: _Components) -> JsonSchema:
    document: JsonSchema = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag] if operation.tag else [],
    }
    if operation.description:
        document["description"] = operation.description
    parameters = _parameters(operation)
    if parameters:
        document["parameters"] = parameters
    if operation.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": components.ref(operation.body)}},
        }
    responses: dict[str, JsonSchema] = {}
    for status, shape in operation.answers.items():
        response: JsonSchema = {"description": operation.summary, "headers": _HEADERS}
        if shape is not None:
            response["content"] = {"application/json": {"schema": components.ref(shape)}}
        responses[str(status)] = response
    responses.update(_error_responses(operation))
    document["responses"] = responses
    return document


def openapi_document(operations: Sequence[Operation], server_url: str) -> JsonSchema:
    """The OpenAPI 3.1 document of ``operations``, served at ``server_url``."""
    components = _Components()
    paths: dict[str, dict[str, JsonSchema]] = {}
    for operation in operations:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(
            operation, components
        )
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "openplatform admin API",
            "version": "2.0",
            "description": "Operators' API (PROTOCOL §5). Send Authorization: Bearer with an "
            "admin token made by `openplatform admin-token create`. Every error carries a code "
            "of the catalogue (GET /api/error-codes) and names the field at fault in "
            "error_detail; lang=zh or Accept-Language: zh selects Chinese messages.",
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"adminToken": []}],
        "tags": [
            {"name": "apps", "description": "third-party apps and their settings"},
            {"name": "users", "description": "end users and developers"},
            {"name": "platform", "description": "maintenance and usage statistics"},
        ],
        "paths": paths,
        "components": {
            "schemas": components.schemas,
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an admin token (openplatform admin-token create)",
                }
            },
        },
    }
