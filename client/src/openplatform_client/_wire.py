"""The protocol's wire format, without I/O: requests as the gateway and the
token endpoint read them, answers turned into results or exceptions.

The sync and async clients share this module and differ only in how they
send; exceptions of httpx are mapped here, once, into the SDK's own.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx

from openplatform_client._catalogue import Lang
from openplatform_client._exceptions import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    OpenPlatformError,
    api_error,
    oauth_error,
)

__all__ = [
    "FORM",
    "ApiAnswer",
    "WireRequest",
    "map_transport_errors",
    "parse_retry_after",
    "read_api_answer",
    "read_oauth_answer",
]

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class WireRequest:
    """One HTTP request to send: a POST of a form to ``path``."""

    path: str
    form: list[tuple[str, str]]
    headers: dict[str, str]

    @property
    def content(self) -> bytes:
        return urlencode(self.form).encode("ascii")

    def send_headers(self) -> dict[str, str]:
        return {"Content-Type": FORM, "Accept": "application/json", **self.headers}


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    """A successful open-API answer: the result and the request id."""

    result: object
    request_id: str | None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _json(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _not_protocol(response: httpx.Response, why: str) -> APIResponseError:
    return APIResponseError(
        f"HTTP {response.status_code}: {why}",
        http_status=response.status_code,
        body=response.text[:2000],
        request_id=response.headers.get("X-Request-Id"),
    )


def read_api_answer(response: httpx.Response, method: str, lang: Lang) -> ApiAnswer:
    """The result of an open-API answer, or its error raised.

    The code is ``X-Error-Code`` (on every answer of the gateway, also for the
    apps that chose ``legacy_http_200``), else the body's ``error_code`` of a
    non-200 answer. The exception class follows from the code alone.
    """
    request_id = response.headers.get("X-Request-Id")
    body = _json(response)
    header = response.headers.get("X-Error-Code", "")
    code: int | None = int(header) if header.isdigit() else None
    if code is None and isinstance(body, dict) and response.status_code != 200:
        raw = body.get("error_code")
        code = raw if isinstance(raw, int) else None
    if code is None:
        if response.status_code != 200:
            raise _not_protocol(response, "not an answer of the open API (no error code)")
        code = 0
    if code == 0:
        if body is None and response.content.strip() != b"null":
            raise _not_protocol(response, "the body is not JSON")
        return ApiAnswer(body, request_id)
    fields = body if isinstance(body, dict) else {}
    message = fields.get("error_msg")
    detail = fields.get("error_detail")
    args = fields.get("request_args")
    raise api_error(
        code,
        message if isinstance(message, str) else None,
        lang=lang,
        error_detail=detail if isinstance(detail, str) else None,
        request_id=request_id,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        http_status=response.status_code,
        method=method,
        request_args=args if isinstance(args, list) else None,
    )


def read_oauth_answer(response: httpx.Response, lang: Lang) -> Mapping[str, object]:
    """The JSON object of a token endpoint answer, or its OAuth error raised."""
    body = _json(response)
    if response.status_code == 200 and isinstance(body, dict):
        return body
    if not isinstance(body, dict) or "error" not in body:
        raise _not_protocol(response, "not an answer of the token endpoint")
    code = body.get("error_code")
    error = body.get("error")
    description = body.get("error_description")
    detail = body.get("error_detail")
    raise oauth_error(
        code if isinstance(code, int) else None,
        error if isinstance(error, str) else None,
        description if isinstance(description, str) else None,
        lang=lang,
        error_detail=detail if isinstance(detail, str) else None,
        request_id=response.headers.get("X-Request-Id"),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        http_status=response.status_code,
    )


@contextmanager
def map_transport_errors() -> Iterator[None]:
    """httpx's transport exceptions as :class:`APIConnectionError`, telling
    whether the request may have reached the server."""
    try:
        yield
    except OpenPlatformError:
        raise
    except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise APITimeoutError(f"no connection: {exc!r}", request_sent=False) from exc
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"timed out: {exc!r}", request_sent=True) from exc
    except httpx.ConnectError as exc:
        raise APIConnectionError(f"no connection: {exc!r}", request_sent=False) from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"connection failed: {exc!r}", request_sent=True) from exc
