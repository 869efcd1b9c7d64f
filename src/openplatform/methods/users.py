"""``users.*`` methods (PROTOCOL §4)."""

from __future__ import annotations

from openplatform.errors import ApiError, Code
from openplatform.methods.registry import MethodCall, MethodSpec, Param, ParamType
from openplatform.storage.users import PROFILE_FIELDS, UserRecord

__all__ = ["METHODS"]

MAX_UIDS = 100
DEFAULT_FIELDS = ("uid", "username", "display_name")
# Fields that need a scope of their own, and the code refusing them (§4).
_PROTECTED_FIELDS = {
    "email": ("email", Code.NO_PERMISSION_EMAIL),
    "mobile": ("mobile", Code.UNSUPPORTED_PERMISSION),
}

_UID = Param("uid", ParamType.INT, min_value=1, max_length=20, invalid_code=Code.INVALID_USER_ID)


async def _granted_scopes(call: MethodCall, uid: int) -> frozenset[str]:
    """What ``uid`` let this app see: the credential's scopes when the call acts
    for that user, else what the user consented to."""
    if uid == call.user_id:
        return call.scopes
    consent = await call.services.database.consents.get(uid, call.app.id)
    return frozenset() if consent is None else consent.scopes


def _check_fields(fields: list[str]) -> list[str]:
    unknown = [name for name in fields if name not in PROFILE_FIELDS]
    if unknown or not fields:
        raise ApiError(
            Code.INVALID_USER_FIELD,
            f"unknown field {unknown[0]!r}" if unknown else "fields is empty",
        )
    return list(dict.fromkeys(fields))


async def get_info(call: MethodCall) -> object:
    """``users.getInfo(uids, fields)``: one object per uid, in the order asked."""
    uids = call.args.get_int_list("uids")
    if uids is None:
        if call.user_id is None:
            raise ApiError(Code.INVALID_PARAMETER, "uids is required for app-only calls")
        uids = [call.user_id]
    if not uids:
        raise ApiError(Code.INVALID_USER_ID, "uids is empty")
    fields = _check_fields(call.args.get_str_list("fields") or list(DEFAULT_FIELDS))
    protected = [(f, *_PROTECTED_FIELDS[f]) for f in fields if f in _PROTECTED_FIELDS]
    for name, scope, code in protected:
        if scope not in call.scopes:
            raise ApiError(code, name)
    users = await call.services.database.users.get_many(uids)
    for uid in uids:
        if uid not in users:
            raise ApiError(Code.INVALID_USER_ID, f"no user {uid}")
    result = []
    for uid in uids:
        user = users[uid]
        if uid != call.user_id and (user.private or user.disabled):
            raise ApiError(Code.USER_NOT_VISIBLE, f"user {uid} is not visible")
        if protected and uid != call.user_id:
            granted = await _granted_scopes(call, uid)
            for name, scope, code in protected:
                if scope not in granted:
                    raise ApiError(code, name)
        result.append(_profile(user, fields))
    return result


def _profile(user: UserRecord, fields: list[str]) -> dict[str, object]:
    profile = user.profile()
    shown: dict[str, object] = {"uid": user.uid}
    for name in fields:
        value = profile[name]
        shown[name] = "" if value is None else value
    return shown


async def get_logged_in_user(call: MethodCall) -> object:
    """``users.getLoggedInUser()``: the token's or session's user."""
    return {"uid": call.user_id}


async def has_app_permission(call: MethodCall) -> object:
    """``users.hasAppPermission(ext_perm)``: whether the user granted the app
    ``ext_perm`` (in this credential or an earlier consent)."""
    assert call.user_id is not None
    ext_perm = call.args.get_str("ext_perm")
    assert ext_perm is not None
    if ext_perm in call.scopes:
        return {"result": True}
    consent = await call.services.database.consents.get(call.user_id, call.app.id)
    return {"result": consent is not None and ext_perm in consent.scopes}


async def is_app_user(call: MethodCall) -> object:
    """``users.isAppUser(uid)``: whether the user has authorized the app (a
    remembered consent) and not revoked it — whatever their tokens' lifetimes
    (the caller's user when ``uid`` is absent)."""
    uid = call.args.get_int("uid")
    if uid is None:
        if call.user_id is None:
            raise ApiError(Code.INVALID_PARAMETER, "uid is required for app-only calls")
        uid = call.user_id
    consent = await call.services.database.consents.get(uid, call.app.id)
    return {"result": consent is not None}


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name="users.getInfo",
        handler=get_info,
        errors=(
            Code.INVALID_USER_ID,
            Code.INVALID_USER_FIELD,
            Code.USER_NOT_VISIBLE,
            Code.UNSUPPORTED_PERMISSION,
            Code.NO_PERMISSION_EMAIL,
        ),
        params=(
            Param(
                "uids",
                ParamType.INT_LIST,
                max_length=4096,
                max_items=MAX_UIDS,
                min_value=1,
                invalid_code=Code.INVALID_USER_ID,
                description="user ids, a comma list or JSON array (at most 100); "
                "default: the caller's user",
            ),
            Param(
                "fields",
                ParamType.STR_LIST,
                max_length=1024,
                description="profile fields: " + ", ".join(PROFILE_FIELDS),
            ),
        ),
        description="Profiles of users, in the order of uids.",
    ),
    MethodSpec(
        name="users.getLoggedInUser",
        handler=get_logged_in_user,
        needs_user=True,
        description="The uid of the user the credential acts for.",
    ),
    MethodSpec(
        name="users.hasAppPermission",
        handler=has_app_permission,
        params=(Param("ext_perm", required=True, max_length=32, description="a scope name"),),
        needs_user=True,
        description="Whether the user granted the app a permission (scope).",
    ),
    MethodSpec(
        name="users.isAppUser",
        handler=is_app_user,
        errors=(Code.INVALID_USER_ID,),
        params=(_UID,),
        description="Whether a user has authorized the app and not revoked it.",
    ),
)
