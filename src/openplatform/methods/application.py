"""``application.*`` methods (PROTOCOL §4)."""

from __future__ import annotations

from openplatform.errors import ApiError, Code
from openplatform.methods.registry import MethodCall, MethodSpec, Param, ParamType

__all__ = ["METHODS"]


async def get_public_info(call: MethodCall) -> object:
    """``application.getPublicInfo(application_id | application_api_key)``:
    what anyone may know of an active app; 900 when there is none."""
    app_id = call.args.get_int("application_id")
    api_key = call.args.get_str("application_api_key")
    if app_id is None and api_key is None:
        raise ApiError(Code.INVALID_PARAMETER, "application_id or application_api_key is required")
    apps = call.services.database.apps
    app = await apps.get(app_id) if app_id is not None else await apps.get_by_api_key(api_key or "")
    if app is None or not app.active or (api_key is not None and app.api_key != api_key):
        raise ApiError(Code.NO_SUCH_APPLICATION)
    return {
        "app_id": app.id,
        "api_key": app.api_key,
        "name": app.name,
        "description": app.description,
        "icon_url": app.icon_url,
    }


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="application.getPublicInfo",
        handler=get_public_info,
        errors=(Code.NO_SUCH_APPLICATION,),
        params=(
            Param("application_id", ParamType.INT, min_value=1, max_length=20),
            Param("application_api_key", max_length=64),
        ),
        description="Public information of an app, by id or api_key.",
    ),
)
