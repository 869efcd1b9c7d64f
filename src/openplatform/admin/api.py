"""Admin API (PROTOCOL §5): JSON over HTTP with an admin bearer token.

Every call is an :class:`~openplatform.admin.operations.Operation` in
:data:`OPERATIONS`: the routes, the request validation and the OpenAPI
document at ``/admin/api/openapi.json`` all come from that one table.

Errors use the API catalogue: 110 (HTTP 401) for a missing or wrong admin
token, 100 for a malformed body, parameter or setting (``error_detail``
names the field), 114 for a bad IP/CIDR, 900 for an unknown app, 108 for an
unknown user, 804 for a username already taken.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from openplatform.admin.operations import (
    AdminCall,
    Answer,
    Operation,
    PathParam,
    operation_endpoint,
)
from openplatform.errors import ApiError, Code
from openplatform.gateway.call_counter import call_counter
from openplatform.gateway.maintenance import maintenance_switch, set_maintenance
from openplatform.json_schema import Array, Boolean, Integer, Nullable, Number, Object, Shape, Text
from openplatform.services import Services
from openplatform.storage.apps import SETTINGS, SETTINGS_PATCH, AppRecord, AppSettings
from openplatform.storage.call_stats import LATENCY_BOUNDS_US, LatencyHistogram
from openplatform.storage.errors import DuplicateError, NotFoundError
from openplatform.storage.users import NEW_USER, PROFILE, USER_PATCH, UserRecord

__all__ = ["OPERATIONS", "admin_routes", "app_json", "user_json"]

OPENAPI_PATH = "/admin/api/openapi.json"
STATS_DEFAULT_WINDOW_S = 3600
STATS_MAX_WINDOW_S = 31 * 86_400
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

# -- what the answers look like ------------------------------------------------

_ID = Integer(minimum=1, maximum=(1 << 63) - 1)
_TIME = Text(max_length=40, format="date-time")
_APP_FIELDS: dict[str, Shape] = {
    "app_id": _ID,
    "api_key": Text(max_length=64, description="the OAuth client_id"),
    "owner_id": Nullable(inner=_ID, description="the developer (user) who owns the app"),
    **SETTINGS.properties,
    "created_at": _TIME,
    "updated_at": _TIME,
}
APP = Object(title="App", properties=_APP_FIELDS, required=tuple(_APP_FIELDS))
NEW_APP = Object(
    title="NewApp",
    description="the app and its secret (shown here once; rotate-secret makes a new one)",
    properties={**_APP_FIELDS, "secret": Text(max_length=128)},
    required=(*_APP_FIELDS, "secret"),
)
USER = Object(
    title="User",
    properties={
        "uid": _ID,
        "username": Text(max_length=64),
        "display_name": PROFILE["display_name"],
        "email": PROFILE["email"],
        "mobile": PROFILE["mobile"],
        "profile_visibility": PROFILE["profile_visibility"],
        "disabled": Boolean(),
    },
    required=(
        "uid",
        "username",
        "display_name",
        "email",
        "mobile",
        "profile_visibility",
        "disabled",
    ),
)


def _page_of(item: Object, title: str) -> Object:
    return Object(
        title=title,
        properties={
            "items": Array(items=item, max_items=MAX_PAGE_SIZE),
            "next_after": Nullable(
                inner=_ID, description="pass as after for the next page; null on the last page"
            ),
        },
        required=("items", "next_after"),
    )


APP_PAGE = _page_of(APP, "AppPage")
USER_PAGE = _page_of(USER, "UserPage")
SECRET = Object(
    title="Secret",
    properties={"app_id": _ID, "secret": Text(max_length=128)},
    required=("app_id", "secret"),
)
MAINTENANCE = Object(
    title="Maintenance",
    properties={
        "enabled": Boolean(),
        "methods": Array(
            items=Text(max_length=100),
            max_items=1000,
            description="methods in maintenance; empty: the whole platform",
        ),
    },
    required=("enabled", "methods"),
)
_MS = Nullable(inner=Number(minimum=0, maximum=1e9), description="ms; null without calls")
_MINUTE = Integer(minimum=0, maximum=1 << 40, description="the minute's start (unix s)")
_CALLS = Integer(minimum=1, maximum=1 << 62)
STATS = Object(
    title="Stats",
    description="Per-minute counts (all processes added up) of calls of one app.",
    properties={
        "app_id": _ID,
        "since": Integer(minimum=0, maximum=1 << 40, description="first minute (unix s)"),
        "until": Integer(minimum=0, maximum=1 << 40, description="end of the window (unix s)"),
        "minutes": Array(
            max_items=1 << 30,
            description="calls per minute, method and error code (0: success)",
            items=Object(
                properties={
                    "minute": _MINUTE,
                    "method": Text(max_length=100),
                    "error_code": Integer(minimum=0, maximum=99_999),
                    "calls": _CALLS,
                    "avg_latency_ms": Number(minimum=0, maximum=1e12),
                },
                required=("minute", "method", "error_code", "calls", "avg_latency_ms"),
            ),
        ),
        "latency_bounds_ms": Array(
            items=Number(minimum=0, maximum=1e9),
            max_items=100,
            description="upper bounds of the latency buckets; a last bucket holds the rest",
        ),
        "latency": Array(
            max_items=1 << 30,
            description="latency per minute and method (every error code), from the buckets",
            items=Object(
                properties={
                    "minute": _MINUTE,
                    "method": Text(max_length=100),
                    "calls": _CALLS,
                    "p50_ms": _MS,
                    "p95_ms": _MS,
                    "p99_ms": _MS,
                    "buckets": Array(
                        items=Integer(minimum=0, maximum=1 << 62),
                        max_items=100,
                        description="calls per bucket of latency_bounds_ms",
                    ),
                },
                required=("minute", "method", "calls", "p50_ms", "p95_ms", "p99_ms", "buckets"),
            ),
        ),
    },
    required=("app_id", "since", "until", "minutes", "latency_bounds_ms", "latency"),
)
_PAGE_QUERY = {
    "limit": Integer(minimum=1, maximum=MAX_PAGE_SIZE, default=PAGE_SIZE),
    "after": Integer(
        minimum=0, maximum=(1 << 63) - 1, default=0, description="the next_after of a page"
    ),
}
APPS_QUERY = Object(
    properties={
        **_PAGE_QUERY,
        "owner_id": Integer(minimum=1, maximum=(1 << 63) - 1, description="a developer's apps"),
    },
    fill_defaults=True,
)
USERS_QUERY = Object(properties=_PAGE_QUERY, fill_defaults=True)
STATS_QUERY = Object(
    required=("app_id",),
    properties={
        "app_id": _ID,
        "since": Integer(
            minimum=0, maximum=1 << 40, description="unix s; default: an hour before until"
        ),
        "until": Integer(minimum=0, maximum=1 << 40, description="unix s; default: now"),
    },
)
MAINTENANCE_BODY = Object(
    title="MaintenanceSwitch",
    required=("enabled",),
    properties={
        "enabled": Boolean(),
        "methods": Array(
            items=Text(max_length=100, not_blank=True),
            max_items=1000,
            default=[],
            description="methods to put in maintenance; empty: the whole platform",
        ),
    },
)

# -- handlers -------------------------------------------------------------------


def app_json(app: AppRecord, *, with_secret: bool = False) -> dict[str, Any]:
    """The app as the admin API shows it: ids, status and every setting."""
    body: dict[str, Any] = {"app_id": app.id, "api_key": app.api_key, "owner_id": app.owner_id}
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


async def _app_or_900(call: AdminCall) -> AppRecord:
    app_id = call.path["app_id"]
    app = await call.services.database.apps.get(app_id)
    if app is None or app.status == "deleted":
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app_id}", field="app_id")
    return app


async def list_apps(call: AdminCall) -> Answer:
    limit = call.query["limit"]
    apps = await call.services.database.apps.page(
        after=call.query["after"], limit=limit, owner_id=call.query.get("owner_id")
    )
    next_after = apps[-1].id if len(apps) == limit else None
    return Answer(200, {"items": [app_json(app) for app in apps], "next_after": next_after})


async def create_app(call: AdminCall) -> Answer:
    app = await call.services.database.apps.create(AppSettings.from_mapping(call.body))
    return Answer(201, app_json(app, with_secret=True))


async def get_app(call: AdminCall) -> Answer:
    return Answer(200, app_json(await _app_or_900(call)))


async def patch_app(call: AdminCall) -> Answer:
    app = await _app_or_900(call)
    try:
        updated = await call.services.database.apps.update(app.id, call.body)
    except NotFoundError:
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app.id}") from None
    return Answer(200, app_json(updated))


async def rotate_secret(call: AdminCall) -> Answer:
    app = await _app_or_900(call)
    try:
        secret = await call.services.database.apps.rotate_secret(app.id)
    except NotFoundError:
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app.id}") from None
    return Answer(200, {"app_id": app.id, "secret": secret})


async def delete_app(call: AdminCall) -> Answer:
    app = await _app_or_900(call)
    try:
        await call.services.database.apps.delete(app.id)
    except NotFoundError:
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app.id}") from None
    await call.services.database.call_stats.delete_app(app.id)
    return Answer(204)


async def list_users(call: AdminCall) -> Answer:
    limit = call.query["limit"]
    users = await call.services.database.users.page(after=call.query["after"], limit=limit)
    next_after = users[-1].uid if len(users) == limit else None
    return Answer(200, {"items": [user_json(user) for user in users], "next_after": next_after})


async def create_user(call: AdminCall) -> Answer:
    body = call.body
    try:
        user = await call.services.database.users.create(
            username=body["username"],
            password=body["password"],
            email=body.get("email"),
            mobile=body.get("mobile"),
            private=body.get("profile_visibility") == "private",
        )
    except DuplicateError as exc:
        raise ApiError(Code.OBJECT_EXISTS, str(exc), field="username") from None
    return Answer(201, user_json(user))


async def get_user(call: AdminCall) -> Answer:
    uid = call.path["uid"]
    user = await call.services.database.users.get(uid)
    if user is None:
        raise ApiError(Code.INVALID_USER_ID, f"no user with uid {uid}", field="uid")
    return Answer(200, user_json(user))


async def patch_user(call: AdminCall) -> Answer:
    uid = call.path["uid"]
    try:
        user = await call.services.database.users.update(uid, call.body)
    except NotFoundError:
        raise ApiError(Code.INVALID_USER_ID, f"no user with uid {uid}", field="uid") from None
    return Answer(200, user_json(user))


async def get_maintenance(call: AdminCall) -> Answer:
    state = await maintenance_switch(call.services).current()
    return Answer(200, {"enabled": state.enabled, "methods": sorted(state.methods)})


async def put_maintenance(call: AdminCall) -> Answer:
    state = await set_maintenance(
        call.services, enabled=call.body["enabled"], methods=call.body.get("methods", [])
    )
    return Answer(200, {"enabled": state.enabled, "methods": sorted(state.methods)})


def _latency_json(histogram: LatencyHistogram) -> dict[str, object]:
    return {
        "calls": histogram.calls,
        "p50_ms": histogram.percentile_ms(0.50),
        "p95_ms": histogram.percentile_ms(0.95),
        "p99_ms": histogram.percentile_ms(0.99),
        "buckets": list(histogram.counts),
    }


async def get_stats(call: AdminCall) -> Answer:
    """The app's calls per minute, method and error code, and latency per
    minute and method, for the minutes that overlap ``since``..``until``
    (default: the last 60 minutes). This process's counts not yet written
    are written first."""
    until = call.query.get("until")
    if until is None:
        until = int(time.time())
    since = call.query.get("since")
    if since is None:
        since = until // 60 * 60 - STATS_DEFAULT_WINDOW_S + 60
    if since > until:
        raise ApiError(Code.INVALID_PARAMETER, "since must not be after until", field="since")
    if until - since > STATS_MAX_WINDOW_S:
        raise ApiError(
            Code.INVALID_PARAMETER,
            f"since..until must span at most {STATS_MAX_WINDOW_S} s (31 days)",
            field="since",
        )
    app_id = call.query["app_id"]
    app = await call.services.database.apps.get(app_id)
    if app is None or app.status == "deleted":
        raise ApiError(Code.NO_SUCH_APPLICATION, f"no app with app_id {app_id}", field="app_id")
    await call_counter(call.services).flush()
    stats = call.services.database.call_stats
    first = since // 60 * 60
    counts = await stats.in_range(app.id, first, until)
    latency = await stats.latency_in_range(app.id, first, until)
    return Answer(
        200,
        {
            "app_id": app.id,
            "since": first,
            "until": until,
            "minutes": [
                {
                    "minute": stat.minute,
                    "method": stat.method,
                    "error_code": stat.error_code,
                    "calls": stat.calls,
                    "avg_latency_ms": stat.avg_latency_ms,
                }
                for stat in counts
            ],
            "latency_bounds_ms": [bound / 1000 for bound in LATENCY_BOUNDS_US],
            "latency": [
                {"minute": item.minute, "method": item.method, **_latency_json(item.histogram)}
                for item in latency
            ],
        },
    )


# -- the table --------------------------------------------------------------------

_APP_ID = {"app_id": PathParam(Code.NO_SUCH_APPLICATION, "the app_id of an app (900 if none)")}
_UID = {"uid": PathParam(Code.INVALID_USER_ID, "a user's uid (108 if none)")}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET", "/admin/api/apps", "listApps", "List apps", list_apps,
        answers={200: APP_PAGE}, query=APPS_QUERY, tag="apps",
        description="Apps by app_id, a page at a time; deleted apps are not listed.",
    ),
    Operation(
        "POST", "/admin/api/apps", "createApp", "Register an app", create_app,
        answers={201: NEW_APP}, body=SETTINGS, errors=(Code.INVALID_IP,), tag="apps",
        description="Settings left out get their defaults. The answer holds the secret.",
    ),
    Operation(
        "GET", "/admin/api/apps/{app_id}", "getApp", "Show an app", get_app,
        answers={200: APP}, path_params=_APP_ID, errors=(Code.NO_SUCH_APPLICATION,),
        tag="apps", description="Every setting; the secret is not shown.",
    ),
    Operation(
        "PATCH", "/admin/api/apps/{app_id}", "updateApp", "Change settings", patch_app,
        answers={200: APP}, path_params=_APP_ID, body=SETTINGS_PATCH,
        errors=(Code.INVALID_IP, Code.NO_SUCH_APPLICATION), tag="apps",
        description="Any subset of the settings; the gateway sees the change at once.",
    ),
    Operation(
        "DELETE", "/admin/api/apps/{app_id}", "deleteApp", "Delete an app", delete_app,
        answers={204: None}, path_params=_APP_ID, errors=(Code.NO_SUCH_APPLICATION,),
        tag="apps",
        description="Its api_key then gets 900, its tokens 110; its statistics are deleted.",
    ),
    Operation(
        "POST", "/admin/api/apps/{app_id}/rotate-secret", "rotateSecret", "Rotate the secret",
        rotate_secret, answers={200: SECRET}, path_params=_APP_ID,
        errors=(Code.NO_SUCH_APPLICATION,), tag="apps",
        description="A new secret; the old one stops working at once.",
    ),
    Operation(
        "GET", "/admin/api/users", "listUsers", "List users", list_users,
        answers={200: USER_PAGE}, query=USERS_QUERY, tag="users",
        description="Users (end users and developers alike) by uid, a page at a time.",
    ),
    Operation(
        "POST", "/admin/api/users", "createUser", "Create a user", create_user,
        answers={201: USER}, body=NEW_USER, errors=(Code.OBJECT_EXISTS,), tag="users",
        description="804 when the username is taken.",
    ),
    Operation(
        "GET", "/admin/api/users/{uid}", "getUser", "Show a user", get_user,
        answers={200: USER}, path_params=_UID, errors=(Code.INVALID_USER_ID,), tag="users",
    ),
    Operation(
        "PATCH", "/admin/api/users/{uid}", "updateUser", "Change a user", patch_user,
        answers={200: USER}, path_params=_UID, body=USER_PATCH,
        errors=(Code.INVALID_USER_ID,), tag="users",
        description="Disabling takes effect at once everywhere: every access token, session "
        "key, refresh token and unredeemed code of the user is revoked for good, and sign-in "
        "is refused. A password change ends the user's browser sessions.",
    ),
    Operation(
        "GET", "/admin/api/maintenance", "getMaintenance", "Maintenance state",
        get_maintenance, answers={200: MAINTENANCE}, tag="platform",
    ),
    Operation(
        "PUT", "/admin/api/maintenance", "setMaintenance", "Switch maintenance",
        put_maintenance, answers={200: MAINTENANCE}, body=MAINTENANCE_BODY, tag="platform",
        description="Calls of the listed methods (empty: every method) answer 2 until "
        "switched off; every process of the platform follows.",
    ),
    Operation(
        "GET", "/admin/api/stats", "getStats", "Usage statistics", get_stats,
        answers={200: STATS}, query=STATS_QUERY, errors=(Code.NO_SUCH_APPLICATION,),
        tag="platform",
        description="Calls per minute, method and error code, and latency (p50/p95/p99 "
        "from a fixed-bucket histogram) per minute and method, added up over every server "
        "process; at most 31 days at a time. Minutes older than "
        "OPENPLATFORM_STATS_RETENTION_DAYS are deleted.",
    ),
)  # fmt: skip


async def openapi_json(request: Request) -> Response:
    """``GET /admin/api/openapi.json``: the document of :data:`OPERATIONS`."""
    from openplatform.admin.openapi import openapi_document

    services: Services = request.app.state.services
    body = orjson.dumps(openapi_document(OPERATIONS, services.issuer))
    headers = {"Cache-Control": "public, max-age=300", "X-Error-Code": "0"}
    return Response(body, 200, headers, media_type="application/json")


def admin_routes(services: Services) -> list[BaseRoute]:
    """One route per path, dispatching on the HTTP method to its operation."""
    by_path: dict[str, dict[str, Operation]] = {}
    for operation in OPERATIONS:
        by_path.setdefault(operation.path, {})[operation.method] = operation
    routes: list[BaseRoute] = [Route(OPENAPI_PATH, openapi_json, methods=["GET"])]
    for path, operations in by_path.items():
        for method, operation in operations.items():
            routes.append(Route(path, operation_endpoint(services, operation), methods=[method]))
    return routes
