"""Render errors and results into response bodies (PROTOCOL §1, §3.4).

This is the one place that turns an :class:`ApiError` or :class:`OAuthError`
into bytes and headers; handlers and checks only raise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from xml.sax.saxutils import escape

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from openplatform.errors import ApiError, Code, Lang, OAuthError, entry

__all__ = [
    "SECRET_PARAMS",
    "ASGIResponse",
    "Format",
    "PlainResponse",
    "api_error_body",
    "api_error_response",
    "negotiate_lang",
    "oauth_error_body",
    "oauth_error_response",
    "redact_args",
    "render_body",
    "result_response",
]

Format = Literal["json", "xml"]

SECRET_PARAMS = frozenset({"sig", "access_token", "session_key", "client_secret", "password"})
REDACTED = "***"

JSON_TYPE = "application/json"
XML_TYPE = "application/xml; charset=utf-8"

# Characters XML 1.0 cannot carry, even escaped; echoed input may contain them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_XML_CR = {"\r": "&#13;"}


def negotiate_lang(lang_param: str | None, accept_language: str | None) -> Lang:
    """``lang`` parameter first, then ``Accept-Language``; English by default."""
    if lang_param is not None:
        return "zh" if lang_param.strip().lower().startswith("zh") else "en"
    if accept_language:
        best = _best_language(accept_language)
        if best.startswith("zh"):
            return "zh"
    return "en"


def _best_language(header: str) -> str:
    best, best_q = "", -1.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = tag.strip().lower(), q
    return best


def redact_args(args: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """``request_args`` of an error body: every parameter, secrets as ``***``."""
    return [
        {"key": key, "value": REDACTED if key in SECRET_PARAMS else value} for key, value in args
    ]


def api_error_body(
    error: ApiError, lang: Lang, request_args: Iterable[tuple[str, str]] = ()
) -> dict[str, object]:
    body: dict[str, object] = {
        "error_code": int(error.code),
        "error_msg": entry(error.code).message(lang, error.fill),
    }
    if error.detail:
        body["error_detail"] = error.detail
    body["request_args"] = redact_args(request_args)
    return body


def oauth_error_body(error: OAuthError, lang: Lang) -> dict[str, object]:
    body: dict[str, object] = {
        "error": error.error,
        "error_description": entry(error.code).message(lang),
        "error_code": int(error.code),
    }
    if error.description:
        body["error_detail"] = error.description
    return body


def render_body(payload: object, fmt: Format, root: str) -> bytes:
    """``payload`` as JSON, or as XML under the element ``root``."""
    if fmt == "xml":
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        _xml_element(parts, root, payload)
        return "".join(parts).encode("utf-8")
    return orjson.dumps(payload)


def _xml_text(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    # A raw CR would reach the reader as LF (XML end-of-line handling).
    return escape(_XML_INVALID.sub("\ufffd", str(value)), _XML_CR)


def _xml_element(parts: list[str], name: str, value: object) -> None:
    tag = name if _XML_NAME.fullmatch(name) else "item"
    if isinstance(value, Mapping):
        parts.append(f"<{tag}>")
        for key, child in value.items():
            _xml_element(parts, str(key), child)
        parts.append(f"</{tag}>")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        parts.append(f"<{tag}>")
        for child in value:
            _xml_element(parts, "item", child)
        parts.append(f"</{tag}>")
    else:
        parts.append(f"<{tag}>{_xml_text(value)}</{tag}>")


def _error_xml(body: dict[str, object]) -> bytes:
    """``<error_response>`` with ``request_args/arg/{key,value}`` (PROTOCOL §3.4)."""
    args = body.get("request_args", [])
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<error_response>']
    for key, value in body.items():
        if key == "request_args":
            parts.append("<request_args>")
            for arg in args if isinstance(args, list) else []:
                _xml_element(parts, "arg", arg)
            parts.append("</request_args>")
        else:
            _xml_element(parts, key, value)
    parts.append("</error_response>")
    return "".join(parts).encode("utf-8")


def _base_headers(code: int, request_id: str) -> dict[str, str]:
    return {"X-Error-Code": str(code), "X-Request-Id": request_id}


def api_error_response(
    error: ApiError,
    *,
    lang: Lang,
    fmt: Format,
    request_id: str,
    request_args: Iterable[tuple[str, str]] = (),
    legacy_http_200: bool = False,
) -> Response:
    body = api_error_body(error, lang, request_args)
    headers = _base_headers(int(error.code), request_id)
    headers.update(error.headers)
    if error.code in (Code.SERVICE_UNAVAILABLE, Code.DATABASE_ERROR, Code.REQUEST_LIMIT_REACHED):
        headers.setdefault("Retry-After", "1")
    status = 200 if legacy_http_200 else error.http_status
    if fmt == "xml":
        return Response(_error_xml(body), status, headers, media_type=XML_TYPE)
    return Response(orjson.dumps(body), status, headers, media_type=JSON_TYPE)


class PlainResponse:
    """A finished answer as an ASGI server takes it: status, raw headers,
    body. What the open API's successful calls send — Starlette's
    ``Response`` does header bookkeeping this does not need."""

    __slots__ = ("body", "raw_headers", "status_code")

    def __init__(self, body: bytes, status: int, media_type: str, headers: Mapping[str, str]):
        self.body = body
        self.status_code = status
        self.raw_headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()),
        ]

    @property
    def headers(self) -> Headers:
        return Headers(raw=self.raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})


ASGIResponse = Response | PlainResponse


def result_response(
    result: object,
    *,
    fmt: Format,
    root: str,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> PlainResponse:
    all_headers = _base_headers(0, request_id)
    if headers:
        all_headers.update(headers)
    media = XML_TYPE if fmt == "xml" else JSON_TYPE
    return PlainResponse(render_body(result, fmt, root), 200, media, all_headers)


def oauth_error_response(error: OAuthError, *, lang: Lang, request_id: str) -> Response:
    headers = _base_headers(int(error.code), request_id)
    headers["Cache-Control"] = "no-store"
    headers.update(error.headers)
    if error.basic_auth_failed:
        headers["WWW-Authenticate"] = 'Basic realm="openplatform"'
    body = orjson.dumps(oauth_error_body(error, lang))
    return Response(body, error.http_status, headers, media_type=JSON_TYPE)
