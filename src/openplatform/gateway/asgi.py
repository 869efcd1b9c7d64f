"""The transport of the open API (PROTOCOL §3): a raw ASGI app for
``GET``/``POST /rest/2.0/<method>`` and ``/rest/2.0/`` + ``method``.

It reads the query string and the form body itself (no framework request
object on the hot path), refuses bodies over 1 MiB without buffering them,
and hands an :class:`IncomingCall` to the :class:`Gateway`. It does what the
application's middleware does for other routes — request id, metrics, code 1
for anything unexpected — so the application can route to it directly.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Message, Receive, Scope, Send

from openplatform.errors import ApiError, Code
from openplatform.errors.render import api_error_response, negotiate_lang
from openplatform.gateway.form import MAX_BODY_BYTES, FormParams, parse_urlencoded
from openplatform.gateway.pipeline import Gateway, IncomingCall
from openplatform.metrics import observe
from openplatform.request_ids import request_id_for
from openplatform.slow_clients import CUT_OFF, BodyTimeout

log = logging.getLogger(__name__)

__all__ = ["GatewayApp", "method_from_path"]

PREFIX = "/rest/2.0"
_FORM_TYPE = "application/x-www-form-urlencoded"
# Parameters the gateway reads before check 3 (method, answer format and
# language, the app of a legacy_http_200 answer).
_READ_BEFORE_CHECK_3 = frozenset({"method", "format", "lang", "api_key"})


def method_from_path(path: str) -> str | None:
    """``/rest/2.0/users.getInfo`` and ``/rest/2.0/users/getInfo`` name
    ``users.getInfo``; ``/rest/2.0/`` names none (the ``method`` parameter does)."""
    rest = path[len(PREFIX) :] if path.startswith(PREFIX) else path
    name = rest.strip("/").replace("/", ".")
    return name or None


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    """The body ended before it was complete: the client went away, or its
    framing broke (Granian reports a malformed chunked body so). Nothing is
    run on a part of a body; the answer (100) reaches whoever is still there."""


def _content_type_problem(content_type: str) -> str | None:
    media, _, params = content_type.partition(";")
    if media.strip().lower() != _FORM_TYPE:
        return f"the body must be {_FORM_TYPE}"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return "the body must be UTF-8"
    return None


async def _read_body(receive: Receive, declared: int | None) -> bytes:
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


class GatewayApp:
    """ASGI app of ``/rest/2.0/…``."""

    def __init__(self, gateway: Gateway, max_params: int) -> None:
        self._gateway = gateway
        self._keep = max_params + 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        request_id = state.get("request_id")
        if not request_id:
            request_id = state["request_id"] = request_id_for(scope["headers"])
        sent = False

        async def send_once(message: Message) -> None:
            nonlocal sent
            sent = True
            await send(message)

        try:
            code, method = await self._answer(scope, receive, send_once, request_id)
        except Exception:
            # Gateway.handle answers everything a call can raise; this is for
            # a defect in the transport itself.
            log.exception("unhandled error in request %s %s", request_id, scope.get("path"))
            code, method = 1, ""
            if not sent:
                error = ApiError(Code.UNKNOWN, f"request id {request_id}")
                await api_error_response(error, lang="en", fmt="json", request_id=request_id)(
                    scope, receive, send
                )
        observe("api", method, str(code), time.perf_counter() - started)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, request_id: str
    ) -> tuple[int, str]:
        """Answer the request; its error code and registered method name ("")."""
        headers: dict[bytes, str] = {}
        forwarded_for: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
            elif name in (
                b"referer",
                b"authorization",
                b"accept-language",
                b"content-type",
                b"content-length",
            ):
                headers[name] = value.decode("latin-1")
        # Check 3 refuses more than max_params; past that only what the answer
        # to checks 1-3 reads is kept (see FormParams).
        form = FormParams(keep=self._keep, also_keep=_READ_BEFORE_CHECK_3)
        parse_urlencoded(scope.get("query_string", b""), form)
        error = None
        http_method = scope["method"]
        if http_method == "POST":
            try:
                error = await self._read_form(receive, headers, form)
            except _ClientGone:
                error = ApiError(Code.INVALID_PARAMETER, CUT_OFF)
        elif http_method not in ("GET", "HEAD"):
            error = ApiError(Code.INVALID_PARAMETER, f"HTTP method {http_method} is not allowed")
        if error is not None:
            response = api_error_response(
                error,
                lang=negotiate_lang(_first(form, "lang"), headers.get(b"accept-language")),
                fmt="xml" if _first(form, "format") == "xml" else "json",
                request_id=request_id,
                request_args=form.pairs,
            )
            await response(scope, receive, send)
            return int(error.code), ""
        path_method = method_from_path(scope.get("path", ""))
        scheme, _, credentials = headers.get(b"authorization", "").partition(" ")
        bearer = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None
        client = scope.get("client")
        call = IncomingCall(
            request_id=request_id,
            path_method=path_method,
            pairs=form.pairs,
            problem=form.problem,
            count=form.count,
            peer=client[0] if client else None,
            forwarded_for=forwarded_for,
            referer=headers.get(b"referer"),
            bearer=bearer,
            accept_language=headers.get(b"accept-language"),
        )
        answer, method, code = await self._gateway.handle(call)
        await answer(scope, receive, send)
        return code, method or ""

    @staticmethod
    async def _read_form(
        receive: Receive, headers: dict[bytes, str], form: FormParams
    ) -> ApiError | None:
        declared = None
        length = headers.get(b"content-length")
        if length is not None:
            if not (length.strip().isascii() and length.strip().isdigit()):
                return ApiError(Code.INVALID_PARAMETER, "Content-Length is malformed")
            declared = int(length)
        try:
            body = await _read_body(receive, declared)
        except _BodyTooLarge:
            return ApiError(
                Code.INVALID_PARAMETER, f"the body is larger than {MAX_BODY_BYTES} bytes"
            )
        except BodyTimeout as late:
            return ApiError(Code.INVALID_PARAMETER, str(late))
        if body:
            content_type = headers.get(b"content-type")
            if content_type is not None:
                problem = _content_type_problem(content_type)
                if problem is not None:
                    return ApiError(Code.INVALID_PARAMETER, problem)
            parse_urlencoded(body, form)
        return None


def _first(form: FormParams, key: str) -> str | None:
    return next((value for k, value in form.pairs if k == key), None)
