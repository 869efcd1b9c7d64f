"""Admin API (PROTOCOL §5): JSON over HTTP with an admin bearer token.

Errors use the API catalogue: 110 (HTTP 401) for a missing or wrong admin
token, 100 for a malformed body or setting, 114 for a bad IP/CIDR, 900 for an
unknown app, 804 for a username already taken.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from openplatform.errors import ApiError, Code
from openplatform.errors.render import api_error_response, negotiate_lang
from openplatform.gateway.call_counter import call_counter
from openplatform.gateway.maintenance import set_maintenance
from openplatform.services import Services
from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.errors import DuplicateError, NotFoundError
from openplatform.storage.users import UserRecord

__all__ = ["admin_routes", "app_json", "user_json"]

Handler = Callable[[Request, Services], Awaitable[Response]]

MAX_BODY = 256 * 1024


def app_json(app: AppRecord, *, with_secret: bool = False) -> dict[str, Any]:
    """The app as the admin API shows it: ids, status and every setting."""
    body: dict[str, Any] = {"app_id": app.id, "api_key": app.api_key}
    body.update(app.settings.to_json())
    body["status"] = app.status
    body["created_at"] = app.created_at.isoformat()
    body["updated_at"] = app.updated_at.isoformat()
    if with_secret:
        body["secret"] = app.secret
    return body


def user_json(user: UserRecord) -> dict[str, Any]:
    return {
        "uid": user.uid,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "mobile": user.mobile,
        "profile_visibility": user.profile_visibility,
        "disabled": user.disabled,
    }


def _json(payload: object, status: int = 200) -> Response:
    return Response(
        orjson.dumps(payload), status, {"X-Error-Code": "0"}, media_type="application/json"
    )


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(Code.INVALID_PARAMETER, f"body larger than {MAX_BODY} bytes")
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ApiError(Code.INVALID_PARAMETER, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(Code.INVALID_PARAMETER, "the body must be a JSON object")
    return data


def _int_path(request: Request, name: str, code: Code) -> int:
    raw = request.path_params[name]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(code, f"{name} {raw!r} is not a number")
    return int(raw)


async def _app_or_900(services: Services, request: Request) -> AppRecord:
    app_id = _int_path(request, "app_id", Code.NO_SUCH_APPLICATION)
    app = await services.database.apps.get(app_id)
    if app is None or app.status == "deleted":
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app_id}")
    return app


async def create_app_(request: Request, services: Services) -> Response:
    settings = AppSettings.from_mapping(await _body(request))
    app = await services.database.apps.create(settings)
    return _json(app_json(app, with_secret=True), 201)


async def get_app(request: Request, services: Services) -> Response:
    return _json(app_json(await _app_or_900(services, request)))


async def patch_app(request: Request, services: Services) -> Response:
    app = await _app_or_900(services, request)
    patch = await _body(request)
    try:
        updated = await services.database.apps.update(app.id, patch)
    except NotFoundError:
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app.id}") from None
    return _json(app_json(updated))


async def rotate_secret(request: Request, services: Services) -> Response:
    app = await _app_or_900(services, request)
    secret = await services.database.apps.rotate_secret(app.id)
    return _json({"app_id": app.id, "secret": secret})


async def delete_app(request: Request, services: Services) -> Response:
    app = await _app_or_900(services, request)
    await services.database.apps.delete(app.id)
    await services.database.call_stats.delete_app(app.id)
    return Response(status_code=204, headers={"X-Error-Code": "0"})


_USER_CREATE_FIELDS = {"username", "password", "email", "mobile", "profile_visibility"}


def _user_fields(body: Mapping[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(Code.INVALID_PARAMETER, f"unknown field(s): {', '.join(unknown)}")
    visibility = body.get("profile_visibility", "public")
    if visibility not in ("public", "private"):
        raise ApiError(Code.INVALID_PARAMETER, "profile_visibility must be public or private")
    for key, value in body.items():
        if key == "disabled":
            if not isinstance(value, bool):
                raise ApiError(Code.INVALID_PARAMETER, "disabled must be true or false")
        elif value is not None and not isinstance(value, str):
            raise ApiError(Code.INVALID_PARAMETER, f"{key} must be a string")
    return dict(body)


async def create_user(request: Request, services: Services) -> Response:
    body = _user_fields(await _body(request), _USER_CREATE_FIELDS)
    for required in ("username", "password"):
        if not body.get(required):
            raise ApiError(Code.INVALID_PARAMETER, f"{required} is required")
    try:
        user = await services.database.users.create(
            username=body["username"],
            password=body["password"],
            email=body.get("email"),
            mobile=body.get("mobile"),
            private=body.get("profile_visibility") == "private",
        )
    except DuplicateError as exc:
        raise ApiError(Code.OBJECT_EXISTS, str(exc)) from None
    return _json(user_json(user), 201)


_USER_PATCH_FIELDS = {
    "disabled",
    "profile_visibility",
    "email",
    "mobile",
    "display_name",
    "avatar_url",
    "locale",
    "password",
}


async def patch_user(request: Request, services: Services) -> Response:
    uid = _int_path(request, "uid", Code.INVALID_USER_ID)
    patch = _user_fields(await _body(request), _USER_PATCH_FIELDS)
    try:
        user = await services.database.users.update(uid, patch)
    except NotFoundError:
        raise ApiError(Code.INVALID_USER_ID, f"no user with uid {uid}") from None
    return _json(user_json(user))


async def put_maintenance(request: Request, services: Services) -> Response:
    body = await _body(request)
    enabled = body.get("enabled")
    methods = body.get("methods", [])
    if not isinstance(enabled, bool):
        raise ApiError(Code.INVALID_PARAMETER, "enabled must be true or false")
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise ApiError(Code.INVALID_PARAMETER, "methods must be a list of method names")
    state = await set_maintenance(services, enabled=enabled, methods=methods)
    return _json({"enabled": state.enabled, "methods": sorted(state.methods)})


STATS_DEFAULT_WINDOW_S = 3600


def _int_query(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise ApiError(Code.INVALID_PARAMETER, f"{name} {raw[:40]!r} is not a number")
    return int(raw)


async def get_stats(request: Request, services: Services) -> Response:
    """``GET /admin/api/stats?app_id=…[&since=…][&until=…]`` (PROTOCOL §5):
    the app's calls per minute, method and error code, for the minutes that
    overlap ``since``..``until`` (unix seconds; default the last 60 minutes).
    This process's counts not yet written are written first."""
    app_id = _int_query(request, "app_id")
    if app_id is None:
        raise ApiError(Code.INVALID_PARAMETER, "app_id is required")
    until = _int_query(request, "until")
    since = _int_query(request, "since")
    if until is None:
        until = int(time.time())
    if since is None:
        since = until // 60 * 60 - STATS_DEFAULT_WINDOW_S + 60
    if since > until:
        raise ApiError(Code.INVALID_PARAMETER, "since must not be after until")
    app = await services.database.apps.get(app_id)
    if app is None or app.status == "deleted":
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app_id}")
    await call_counter(services).flush()
    stats = await services.database.call_stats.in_range(app.id, since // 60 * 60, until)
    minutes = [
        {
            "minute": stat.minute,
            "method": stat.method,
            "error_code": stat.error_code,
            "calls": stat.calls,
            "avg_latency_ms": stat.avg_latency_ms,
        }
        for stat in stats
    ]
    return _json({"app_id": app.id, "minutes": minutes})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _endpoint(services: Services, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        lang = negotiate_lang(
            request.query_params.get("lang"), request.headers.get("accept-language")
        )
        try:
            token = _bearer(request)
            if token is None or not await services.database.admin_tokens.verify(token):
                raise ApiError(Code.INVALID_ACCESS_TOKEN, "a valid admin token is required")
            return await handler(request, services)
        except ApiError as error:
            return api_error_response(
                error,
                lang=lang,
                fmt="json",
                request_id=str(request.scope.get("state", {}).get("request_id", "")),
            )

    return endpoint


def admin_routes(services: Services) -> list[BaseRoute]:
    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(path, _endpoint(services, handler), methods=[method])

    return [
        route("/admin/api/apps", create_app_, "POST"),
        route("/admin/api/apps/{app_id}", get_app, "GET"),
        route("/admin/api/apps/{app_id}", patch_app, "PATCH"),
        route("/admin/api/apps/{app_id}", delete_app, "DELETE"),
        route("/admin/api/apps/{app_id}/rotate-secret", rotate_secret, "POST"),
        route("/admin/api/users", create_user, "POST"),
        route("/admin/api/users/{uid}", patch_user, "PATCH"),
        route("/admin/api/maintenance", put_maintenance, "PUT"),
        route("/admin/api/stats", get_stats, "GET"),
    ]
