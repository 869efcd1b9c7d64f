"""The ASGI application: routes, request ids, metrics, last-resort errors."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openplatform.cache import SharedStateUnavailable, open_shared_state
from openplatform.config import Settings
from openplatform.errors import CATALOGUE, ApiError, Code, OAuthError
from openplatform.errors.internal import RETRY_AFTER_S, internal_failure
from openplatform.errors.render import api_error_response, negotiate_lang, oauth_error_response
from openplatform.gateway.call_counter import call_counter
from openplatform.housekeeping import Housekeeping
from openplatform.metrics import CONTENT_TYPE_LATEST, observe, render_metrics
from openplatform.request_ids import request_id_for
from openplatform.services import Services
from openplatform.slow_clients import CUT_OFF, BodyTimeout, receive_in_time
from openplatform.storage.errors import DatabaseUnavailable

__all__ = ["RequestContextMiddleware", "app_from_env", "build_services", "create_app"]

log = logging.getLogger("openplatform")

_ROUTE_GROUPS = (
    ("/rest/", "api"),
    ("/oauth/", "oauth"),
    ("/.well-known/", "oauth"),
    ("/admin/", "admin"),
    ("/console", "console"),
    ("/account", "account"),
    ("/docs/", "docs"),
    ("/api/", "public"),
)


def route_group(path: str) -> str:
    """A bounded label for metrics: never the raw path."""
    for prefix, group in _ROUTE_GROUPS:
        if path.startswith(prefix):
            return group
    return "other"


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-Id``), records metrics, and turns
    anything unexpected into code 1 with that id — the traceback goes to the
    server log only (PROTOCOL §1).

    ``direct`` maps path prefixes to ASGI apps that do all of that themselves
    (the open API gateway): their requests go straight there, past Starlette's
    routing and exception layers — the hot path pays for none of them."""

    def __init__(
        self,
        app: ASGIApp,
        direct: Sequence[tuple[str, ASGIApp]] = (),
        body_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self._direct = tuple(direct)
        self._body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._body_timeout_s is not None:
            receive = receive_in_time(receive, self._body_timeout_s)
        path: str = scope["path"]
        for prefix, target in self._direct:
            if path == prefix or path.startswith(prefix + "/"):
                try:
                    await target(scope, receive, send)
                except asyncio.CancelledError:
                    await self._cut_off(scope, receive, send)
                    raise
                return
        request_id = request_id_for(scope["headers"])
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        sent_start = False
        error_code = "0"

        async def send_wrapper(message: Message) -> None:
            nonlocal sent_start, error_code
            if message["type"] == "http.response.start":
                sent_start = True
                headers = list(message.get("headers", []))
                have_id = False
                for name, value in headers:
                    if name == b"x-error-code":
                        error_code = value.decode("latin-1")
                    elif name == b"x-request-id":
                        have_id = True
                if not have_id:
                    headers.append((b"x-request-id", request_id.encode()))
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:
            error_code = "2"
            if not sent_start:
                await self._cut_off(scope, receive, send)
            raise
        except (ClientDisconnect, BodyTimeout) as cut_off:
            # The body ended early (the client went away, or its framing broke)
            # or late: 100, to whoever is still there.
            error_code = str(int(Code.INVALID_PARAMETER))
            if not sent_start:
                detail = CUT_OFF if isinstance(cut_off, ClientDisconnect) else str(cut_off)
                error = ApiError(Code.INVALID_PARAMETER, detail)
                await self._error(scope, request_id, error)(scope, receive, send)
        except (DatabaseUnavailable, SharedStateUnavailable) as outage:
            error_code = "2"
            error = internal_failure(Code.SERVICE_UNAVAILABLE, request_id, outage)
            if not sent_start:
                await self._error(scope, request_id, error)(scope, receive, send)
        except Exception as unexpected:
            error_code = "1"
            error = internal_failure(Code.UNKNOWN, request_id, unexpected)
            if not sent_start:
                await self._error(scope, request_id, error)(scope, receive, send)
        finally:
            observe(
                route_group(scope.get("path", "")),
                str(state.get("api_method", "")),
                error_code,
                time.perf_counter() - started,
            )

    @classmethod
    async def _cut_off(cls, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI server cancelled the request: its graceful shutdown
        timeout (``OPENPLATFORM_SHUTDOWN_TIMEOUT_S``) passed with the request
        still running. Answer 2 with Retry-After — another instance may
        serve it — rather than the server's own bare 500. When the answer had
        begun already the server refuses this one; nothing more can be said."""
        request_id = str(scope.get("state", {}).get("request_id", "")) or request_id_for(
            scope["headers"]
        )
        cause = asyncio.CancelledError("cut off at the server's graceful shutdown timeout")
        error = internal_failure(Code.SERVICE_UNAVAILABLE, request_id, cause)
        with contextlib.suppress(Exception):
            await cls._error(scope, request_id, error)(scope, receive, send)

    @staticmethod
    def _error(scope: Scope, request_id: str, error: ApiError) -> Response:
        request = Request(scope)
        lang = negotiate_lang(
            request.query_params.get("lang"), request.headers.get("accept-language")
        )
        return api_error_response(
            error,
            lang=lang,
            fmt="xml" if request.query_params.get("format") == "xml" else "json",
            request_id=request_id,
        )


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _json(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"}, headers={"X-Error-Code": "0"})


async def readyz(request: Request) -> Response:
    """Ready when the database and the shared cache both answer."""
    services: Services = request.app.state.services
    request_id = _request_id(request)
    checks: dict[str, str] = {}
    for name, ping in (
        ("database", services.database.ping),
        ("cache", services.shared_state.ping),
    ):
        try:
            await ping()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which
            log.warning("readiness: %s unavailable (request %s): %s", name, request_id, exc)
            checks[name] = "unavailable"
    if all(value == "ok" for value in checks.values()):
        return _json({"status": "ok", **checks}, headers={"X-Error-Code": "0"})
    # Which dependency is down, in plain words; the why is in the log above.
    detail = ", ".join(f"{k} {v}" for k, v in checks.items())
    return api_error_response(
        ApiError(
            Code.SERVICE_UNAVAILABLE,
            f"{detail} (request id {request_id})",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ),
        lang="en",
        fmt="json",
        request_id=request_id,
    )


async def metrics(request: Request) -> Response:
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)


_CATALOGUE_BODY = orjson.dumps(
    [
        {
            "code": e.code,
            "family": e.family,
            "error": e.error,
            "http_status": e.http_status,
            "en": e.en,
            "zh": e.zh,
        }
        for e in CATALOGUE.values()
    ]
)
_CATALOGUE_ETAG = f'"{uuid.uuid5(uuid.NAMESPACE_URL, _CATALOGUE_BODY.decode()).hex}"'


async def error_codes(request: Request) -> Response:
    """PROTOCOL §5: the whole catalogue, public and cacheable."""
    headers = {"Cache-Control": "public, max-age=3600", "ETag": _CATALOGUE_ETAG}
    if request.headers.get("if-none-match") == _CATALOGUE_ETAG:
        return Response(status_code=304, headers=headers)
    return Response(_CATALOGUE_BODY, 200, headers, media_type="application/json")


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such route: 3) and 405 (wrong HTTP method: 100,
    HTTP 400 as PROTOCOL §1 has it, with ``Allow``) in the catalogue's words;
    under ``/oauth/`` a wrong HTTP method is an OAuth ``invalid_request``."""
    assert isinstance(exc, HTTPException)
    lang = negotiate_lang(request.query_params.get("lang"), request.headers.get("accept-language"))
    detail = f"{request.method} {request.url.path}: {exc.detail}"
    allow = {"Allow": exc.headers["Allow"]} if exc.headers and "Allow" in exc.headers else {}
    response: Response
    if exc.status_code == 405 and request.url.path.startswith("/oauth/"):
        response = oauth_error_response(
            OAuthError(Code.INVALID_REQUEST, detail), lang=lang, request_id=_request_id(request)
        )
    else:
        code = Code.UNSUPPORTED_METHOD if exc.status_code == 404 else Code.INVALID_PARAMETER
        response = api_error_response(
            ApiError(code, detail, headers=allow),
            lang=lang,
            fmt="json",
            request_id=_request_id(request),
        )
    response.headers.update(allow)
    return response


def build_services(settings: Settings, issuer: str | None = None) -> Services:
    from openplatform.storage.database import open_database

    return Services(
        settings=settings,
        database=open_database(settings),
        shared_state=open_shared_state(settings.cache_url, timeout_s=settings.cache_timeout_s),
        issuer=issuer or settings.issuer or "http://127.0.0.1:8000",
    )


def _feature_routes(services: Services) -> list[BaseRoute]:
    """Routes of the platform's parts but the gateway (OAuth, admin, pages)."""
    from openplatform.admin.api import admin_routes
    from openplatform.oauth.web import oauth_routes
    from openplatform.web import web_routes

    routes: list[BaseRoute] = [
        *oauth_routes(services),
        *admin_routes(services),
        *web_routes(services),
    ]
    if services.settings.demo:
        from openplatform.demo import demo_callback

        routes.append(Route("/demo/callback", demo_callback))
    return routes


def settle_garbage_collector() -> None:
    """Everything made by start-up (modules, the method registry, templates,
    the database engine: about 100,000 objects) lives as long as the process.
    Move it out of the cyclic collector's sight, so that a full collection
    walks only what requests made since: over the start-up heap one took
    120-170 ms, a stall every request in flight would wait out (p99), after
    ``gc.freeze()`` well under a millisecond. Only for a process of its own
    (``openplatform serve``): frozen objects are never collected."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings, services: Services | None = None, *, own_process: bool = False
) -> Starlette:
    """The application. ``services`` may be given by tests; otherwise built from
    ``settings`` and closed on shutdown. ``own_process``: the app is all its
    process serves (``openplatform serve``), see :func:`settle_garbage_collector`."""
    own = services is None
    the_services = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if own and settings.is_sqlite:
            from openplatform.storage.migrate import upgrade_async

            await upgrade_async(settings)
        calls = call_counter(the_services)  # PROTOCOL §5 stats, flushed in the background
        calls.start()
        housekeeping = Housekeeping.from_services(the_services)  # prunes what expired
        housekeeping.start()
        if own_process:
            settle_garbage_collector()
        try:
            yield
        finally:
            await housekeeping.stop()
            await calls.stop()
            if own:
                await the_services.close()

    from openplatform.gateway import PREFIX, gateway_app

    api = gateway_app(the_services)
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/error-codes", error_codes),
        Route(PREFIX, api),
        Route(PREFIX + "/{method:path}", api),
        *_feature_routes(the_services),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(
                RequestContextMiddleware,
                direct=[(PREFIX, api)],
                body_timeout_s=settings.body_timeout_s,
            )
        ],
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.services = the_services
    return app


def app_from_env() -> Starlette:
    """ASGI factory for the server processes (``openplatform serve``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(Settings.from_env(), own_process=True)
