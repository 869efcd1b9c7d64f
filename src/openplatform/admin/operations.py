"""The admin API's operations as declarations (PROTOCOL §5).

An :class:`Operation` names its HTTP method and path, its path and query
parameters, its JSON body and its answers, each a :mod:`openplatform.json_schema`
shape. :func:`operation_endpoint` validates a request against exactly these
declarations before the handler runs, and :mod:`openplatform.admin.openapi`
builds the OpenAPI 3.1 document from them: one source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from openplatform.errors import ApiError, Code
from openplatform.errors.render import api_error_response, negotiate_lang
from openplatform.json_schema import Integer, Object, Shape, Text, invalid
from openplatform.services import Services

__all__ = ["LANG", "AdminCall", "Answer", "Operation", "PathParam", "operation_endpoint"]

MAX_BODY = 256 * 1024
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")
# Every operation takes it: the language of error messages (PROTOCOL §1).
LANG = Text(
    max_length=2,
    enum=("en", "zh"),
    description="language of error_msg (default: Accept-Language, else en)",
)


@dataclass(frozen=True, slots=True)
class AdminCall:
    """A request that passed its operation's declarations."""

    services: Services
    path: Mapping[str, int]
    query: Mapping[str, Any]
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: object = None


@dataclass(frozen=True, slots=True)
class PathParam:
    """A numeric id in the path; one that is not a number, or not a known
    one, is ``code`` (900 for apps, 108 for users)."""

    code: Code
    description: str = ""
    shape: Integer = field(default_factory=lambda: Integer(minimum=1, maximum=(1 << 63) - 1))

    def parse(self, name: str, raw: str) -> int:
        if not raw.isascii() or not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
            raise ApiError(self.code, f"{name} {raw[:40]!r} is not a number", field=name)
        return int(raw)


Handler = Callable[[AdminCall], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One call of the admin API. ``answers``: the success statuses and the
    shape of their bodies (None: no body); ``errors``: the codes it may
    answer besides 110 (admin token) and 100 (malformed request)."""

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Handler
    answers: Mapping[int, Shape | None]
    description: str = ""
    tag: str = ""
    path_params: Mapping[str, PathParam] = field(default_factory=dict)
    query: Object | None = None
    body: Object | None = None
    errors: tuple[Code, ...] = ()


def _query_value(shape: Shape, name: str, raw: str) -> object:
    """A query parameter's text as its shape's JSON type."""
    if isinstance(shape, Integer):
        if not _WHOLE_NUMBER.fullmatch(raw):
            raise invalid(name, "must be a whole number")
        return int(raw)
    return raw


def _query(operation: Operation, request: Request) -> dict[str, object]:
    """The declared query parameters, typed and checked; an undeclared one is 100."""
    declared = operation.query.properties if operation.query is not None else {}
    raw: dict[str, object] = {}
    for name in request.query_params:
        if name == "lang":
            LANG.check(request.query_params[name], name)
            continue
        shape = declared.get(name)
        if shape is None:
            raise invalid(name[:40], "is not a parameter of this call")
        values = request.query_params.getlist(name)
        if len(values) > 1:
            raise invalid(name, "is given more than once")
        raw[name] = _query_value(shape, name, values[0])
    return {} if operation.query is None else operation.query.check(raw, "")


async def _body(operation: Operation, request: Request) -> dict[str, object]:
    if operation.body is None:
        return {}
    too_large = ApiError(Code.INVALID_PARAMETER, f"the body is larger than {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # never more than MAX_BODY in memory
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(Code.INVALID_PARAMETER, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(Code.INVALID_PARAMETER, "the body must be a JSON object")
    return operation.body.check(data, "")


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _response(answer: Answer) -> Response:
    headers = {"X-Error-Code": "0", "Cache-Control": "no-store"}
    if answer.body is None:
        return Response(status_code=answer.status, headers=headers)
    body = orjson.dumps(answer.body)
    return Response(body, answer.status, headers, media_type="application/json")


def operation_endpoint(
    services: Services, operation: Operation
) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``operation``: the admin token, then the
    path, the query and the body checked against the declarations, then the
    handler; every error rendered once with the catalogue's code."""

    async def endpoint(request: Request) -> Response:
        lang = negotiate_lang(
            request.query_params.get("lang"), request.headers.get("accept-language")
        )
        try:
            token = _bearer(request)
            if token is None or not await services.database.admin_tokens.verify(token):
                raise ApiError(Code.INVALID_ACCESS_TOKEN, "a valid admin token is required")
            path = {
                name: param.parse(name, request.path_params[name])
                for name, param in operation.path_params.items()
            }
            call = AdminCall(
                services, path, _query(operation, request), await _body(operation, request)
            )
            return _response(await operation.handler(call))
        except ApiError as error:
            return api_error_response(
                error,
                lang=lang,
                fmt="json",
                request_id=str(request.scope.get("state", {}).get("request_id", "")),
            )

    return endpoint
