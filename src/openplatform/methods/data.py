"""``data.*`` methods (PROTOCOL §4 "data"): the per-app data store.

Who may call what. Every app has a store of its own. Preferences are per user
of the app (as in Facebook's Data Store API): they need a user credential
(access token or session key) carrying the ``data`` scope — an app-only call
gets 6. Object types, objects, hash keys and associations belong to the app:
an app-only signed call (the app's secret) may use them, and a user
credential may too when it carries the ``data`` scope (6 otherwise).

Every method is batchable. The store behind them is
:class:`~openplatform.storage.data_store.DataStore`; its errors become codes
in one place (:func:`_answering`): unknown type, object or association 803,
name already used 804, operation not valid for the type 801, quota 802, a
value its property cannot hold 100, the database failing after retries 805
(nothing half-written), anything else 800 — both a plain sentence with the
request id (:func:`~openplatform.errors.internal.internal_failure`; the cause,
and for 800 its traceback, go to the server log only).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from openplatform.errors import ApiError, Code
from openplatform.errors.internal import internal_failure
from openplatform.methods.registry import Handler, MethodCall, MethodSpec, Param, ParamType
from openplatform.storage.data_store import (
    ASSOC_DATA_MAX_CHARS,
    HASH_KEY_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    MAX_PREF_ID,
    PREF_VALUE_MAX_CHARS,
    TEXT_MAX_BYTES,
    Association,
    AssociationDefinition,
    AssociationKey,
    AssocInfo,
    AssocType,
    DataStore,
    InvalidOperation,
    InvalidValue,
    NewAssociation,
    PropType,
    QuotaExceeded,
    StoredObject,
    Tenant,
    Value,
)
from openplatform.storage.errors import DatabaseUnavailable, DuplicateError, NotFoundError

__all__ = ["METHODS"]


MAX_IDS = 100  # obj_ids, keys, prop_names per call
MAX_JSON_CHARS = 256 * 1024
# getObject answers {"obj_id": n, <property>: <value>, …}.
RESERVED_PROPERTY_NAMES = frozenset({"obj_id"})


def _store(call: MethodCall) -> DataStore:
    return call.services.database.data_store


def _tenant(call: MethodCall) -> Tenant:
    return Tenant(call.app.id, call.app.settings.storage_quota_bytes)


def _user(call: MethodCall) -> int:
    assert call.user_id is not None  # per-user methods need a user (check 14)
    return call.user_id


def _answering(handler: Handler) -> Handler:
    """``handler`` with the store's errors turned into codes (see the module
    docstring); API errors pass through."""

    async def answer(call: MethodCall) -> object:
        try:
            return await handler(call)
        except ApiError:
            raise
        except NotFoundError as exc:
            raise ApiError(Code.OBJECT_NOT_FOUND, str(exc)) from None
        except DuplicateError as exc:
            raise ApiError(Code.OBJECT_EXISTS, str(exc)) from None
        except InvalidOperation as exc:
            raise ApiError(Code.INVALID_OPERATION, str(exc)) from None
        except QuotaExceeded as exc:
            raise ApiError(Code.QUOTA_EXCEEDED, str(exc)) from None
        except InvalidValue as exc:
            raise ApiError(Code.INVALID_PARAMETER, str(exc)) from None
        except DatabaseUnavailable as exc:
            # the driver's message (a host, a port) goes to the log only
            raise internal_failure(Code.DATABASE_ERROR, call.request_id, exc) from None
        except Exception as exc:
            raise internal_failure(Code.DATA_STORE_UNKNOWN, call.request_id, exc) from None

    return answer


def _invalid(detail: str) -> ApiError:
    return ApiError(Code.INVALID_PARAMETER, detail)


def _arg(value: object, name: str) -> Any:
    """A parameter the registry has checked to be present (``required``)."""
    assert value is not None, name
    return value


def _str(call: MethodCall, name: str) -> str:
    return str(_arg(call.args.get_str(name), name))


def _int(call: MethodCall, name: str) -> int:
    return int(_arg(call.args.get_int(name), name))


def _done() -> dict[str, bool]:
    """What a method that only acts answers."""
    return {"result": True}


def _shown(value: Value | None) -> Value:
    """An unset value is "" (PROTOCOL §4)."""
    return "" if value is None else value


# --- preferences ---------------------------------------------------------------


async def get_user_preference(call: MethodCall) -> object:
    value = await _store(call).get_preference(call.app.id, _user(call), _int(call, "pref_id"))
    return {"value": value}


async def set_user_preference(call: MethodCall) -> object:
    values = {_int(call, "pref_id"): _str(call, "value")}
    await _store(call).set_preferences(_tenant(call), _user(call), values, replace=False)
    return _done()


async def get_user_preferences(call: MethodCall) -> object:
    preferences = await _store(call).get_preferences(call.app.id, _user(call))
    return [{"pref_id": p.pref_id, "value": p.value} for p in preferences]


def _preference_values(raw: Mapping[str, object]) -> dict[int, str]:
    """``values`` of ``setUserPreferences``: ``{"<pref_id>": "<value>", …}``."""
    values: dict[int, str] = {}
    for key, value in raw.items():
        if not key.isdigit() or int(key) > MAX_PREF_ID:
            raise _invalid(f"values: {key[:20]!r} is not a pref_id (0 to {MAX_PREF_ID})")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise _invalid(f"values: the value of {key} must be a string")
        if len(value) > PREF_VALUE_MAX_CHARS:
            raise _invalid(f"values: the value of {key} is longer than {PREF_VALUE_MAX_CHARS}")
        values[int(key)] = value
    return values


async def set_user_preferences(call: MethodCall) -> object:
    values = _preference_values(_arg(call.args.get_json_object("values"), "values"))
    replace = bool(call.args.get_bool("replace", False))
    await _store(call).set_preferences(_tenant(call), _user(call), values, replace=replace)
    return _done()


# --- object types --------------------------------------------------------------


def _property_name(name: str, param: str) -> str:
    if name in RESERVED_PROPERTY_NAMES:
        raise _invalid(f"{param}: {name!r} is reserved")
    return name


async def create_object_type(call: MethodCall) -> object:
    await _store(call).create_type(_tenant(call), _str(call, "name"))
    return _done()


async def drop_object_type(call: MethodCall) -> object:
    await _store(call).drop_type(_tenant(call), _str(call, "obj_type"))
    return _done()


async def rename_object_type(call: MethodCall) -> object:
    await _store(call).rename_type(_tenant(call), _str(call, "obj_type"), _str(call, "new_name"))
    return _done()


async def define_object_property(call: MethodCall) -> object:
    prop_name = _property_name(_str(call, "prop_name"), "prop_name")
    prop_type = PropType(_int(call, "prop_type"))
    await _store(call).define_property(_tenant(call), _str(call, "obj_type"), prop_name, prop_type)
    return _done()


async def undefine_object_property(call: MethodCall) -> object:
    await _store(call).undefine_property(
        _tenant(call), _str(call, "obj_type"), _str(call, "prop_name")
    )
    return _done()


async def rename_object_property(call: MethodCall) -> object:
    new_name = _property_name(_str(call, "new_name"), "new_name")
    await _store(call).rename_property(
        _tenant(call), _str(call, "obj_type"), _str(call, "prop_name"), new_name
    )
    return _done()


async def get_object_types(call: MethodCall) -> object:
    return [{"name": name} for name in await _store(call).get_types(call.app.id)]


async def get_object_type(call: MethodCall) -> object:
    properties = await _store(call).get_type(call.app.id, _str(call, "obj_type"))
    return [{"name": p.name, "prop_type": int(p.prop_type)} for p in properties]


# --- objects -------------------------------------------------------------------


def _object(stored: StoredObject) -> dict[str, object]:
    shown: dict[str, object] = {"obj_id": stored.obj_id}
    shown.update((name, _shown(value)) for name, value in stored.values.items())
    return shown


async def create_object(call: MethodCall) -> object:
    properties = call.args.get_json_object("properties") or {}
    obj_id = await _store(call).create_object(_tenant(call), _str(call, "obj_type"), properties)
    return {"obj_id": obj_id}


async def update_object(call: MethodCall) -> object:
    properties = _arg(call.args.get_json_object("properties"), "properties")
    replace = bool(call.args.get_bool("replace", False))
    await _store(call).update_object(
        _tenant(call), _int(call, "obj_id"), properties, replace=replace
    )
    return _done()


async def delete_object(call: MethodCall) -> object:
    await _store(call).delete_objects(_tenant(call), [_int(call, "obj_id")])
    return _done()


async def delete_objects(call: MethodCall) -> object:
    await _store(call).delete_objects(_tenant(call), _arg(call.args.get_int_list("obj_ids"), "ids"))
    return _done()


async def get_object(call: MethodCall) -> object:
    prop_names = call.args.get_str_list("prop_names")
    stored = await _store(call).get_objects(call.app.id, [_int(call, "obj_id")], prop_names)
    return _object(stored[0])


async def get_objects(call: MethodCall) -> object:
    obj_ids = _arg(call.args.get_int_list("obj_ids"), "obj_ids")
    prop_names = call.args.get_str_list("prop_names")
    return [_object(o) for o in await _store(call).get_objects(call.app.id, obj_ids, prop_names)]


async def get_object_property(call: MethodCall) -> object:
    name = _str(call, "prop_name")
    stored = await _store(call).get_objects(call.app.id, [_int(call, "obj_id")], [name])
    return {"value": _shown(stored[0].values[name])}


async def set_object_property(call: MethodCall) -> object:
    properties = {_str(call, "prop_name"): _str(call, "prop_value")}
    await _store(call).update_object(_tenant(call), _int(call, "obj_id"), properties, replace=False)
    return _done()


# --- hash keys -----------------------------------------------------------------


async def get_hash_value(call: MethodCall) -> object:
    value = await _store(call).get_hash_value(
        call.app.id, _str(call, "obj_type"), _str(call, "key"), _str(call, "prop_name")
    )
    return {"value": _shown(value)}


async def set_hash_value(call: MethodCall) -> object:
    await _store(call).set_hash_value(
        _tenant(call),
        _str(call, "obj_type"),
        _str(call, "key"),
        _str(call, "prop_name"),
        _str(call, "value"),
    )
    return _done()


async def inc_hash_value(call: MethodCall) -> object:
    value = await _store(call).increment_hash_value(
        _tenant(call),
        _str(call, "obj_type"),
        _str(call, "key"),
        _str(call, "prop_name"),
        _int(call, "increment") if "increment" in call.args else 1,
    )
    return {"value": value}


async def remove_hash_key(call: MethodCall) -> object:
    await _store(call).remove_hash_keys(_tenant(call), _str(call, "obj_type"), [_str(call, "key")])
    return _done()


async def remove_hash_keys(call: MethodCall) -> object:
    keys = _arg(call.args.get_str_list("keys"), "keys")
    await _store(call).remove_hash_keys(_tenant(call), _str(call, "obj_type"), keys)
    return _done()


# --- associations --------------------------------------------------------------

_INFO_KEYS = frozenset({"alias", "object_type", "unique"})
_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _assoc_info(call: MethodCall, param: str) -> AssocInfo:
    """``assoc_info1``/``assoc_info2``: ``{"alias", "object_type", "unique"}``,
    each optional."""
    raw = call.args.get_json_object(param) or {}
    unknown = sorted(set(raw) - _INFO_KEYS)
    if unknown:
        raise _invalid(
            f"{param}: unknown key {unknown[0][:40]!r} (known: alias, object_type, unique)"
        )
    texts = []
    for key in ("alias", "object_type"):
        value = raw.get(key, "")
        if not isinstance(value, str) or len(value) > 255:
            raise _invalid(f"{param}.{key}: a string of at most 255 characters")
        texts.append(value)
    unique = _FLAGS.get(str(raw.get("unique", False)).lower())
    if unique is None or isinstance(raw.get("unique"), float):
        raise _invalid(f"{param}.unique: true or false")
    return AssocInfo(texts[0], texts[1], unique)


def _definition(definition: AssociationDefinition) -> dict[str, object]:
    def info(side: AssocInfo) -> dict[str, object]:
        return {"alias": side.alias, "object_type": side.object_type, "unique": side.unique}

    return {
        "name": definition.name,
        "assoc_type": int(definition.assoc_type),
        "assoc_info1": info(definition.assoc_info1),
        "assoc_info2": info(definition.assoc_info2),
        "inverse": definition.inverse or "",
    }


def _association(association: Association, *, no_data: bool, full: bool) -> dict[str, object]:
    shown: dict[str, object] = {}
    if full:
        shown.update(name=association.name, id1=association.id1)
    shown["id2"] = association.id2
    if not no_data:
        shown["data"] = association.data
    shown["time"] = association.time
    return shown


def _assoc_time(call: MethodCall) -> int:
    """``assoc_time``, Unix seconds; now when not given."""
    given = call.args.get_int("assoc_time")
    return int(time.time()) if given is None else given


async def define_association(call: MethodCall) -> object:
    await _store(call).define_association(
        _tenant(call),
        _str(call, "name"),
        AssocType(_int(call, "assoc_type")),
        _assoc_info(call, "assoc_info1"),
        _assoc_info(call, "assoc_info2"),
        call.args.get_str("inverse"),
    )
    return _done()


async def undefine_association(call: MethodCall) -> object:
    await _store(call).undefine_association(_tenant(call), _str(call, "name"))
    return _done()


async def rename_association(call: MethodCall) -> object:
    await _store(call).rename_association(_tenant(call), _str(call, "name"), _str(call, "new_name"))
    return _done()


async def get_association_definition(call: MethodCall) -> object:
    found = await _store(call).get_association_definitions(call.app.id, [_str(call, "name")])
    return _definition(found[0])


async def get_association_definitions(call: MethodCall) -> object:
    return [
        _definition(d) for d in await _store(call).get_association_definitions(call.app.id, None)
    ]


async def set_association(call: MethodCall) -> object:
    item = NewAssociation(
        _str(call, "name"),
        _int(call, "obj_id1"),
        _int(call, "obj_id2"),
        call.args.get_str("data") or "",
        _assoc_time(call),
    )
    await _store(call).set_associations(_tenant(call), [item])
    return _done()


async def set_associations(call: MethodCall) -> object:
    """``obj_id1`` associated with each of ``obj_ids``, all or none."""
    name, id1, data = _str(call, "name"), _int(call, "obj_id1"), call.args.get_str("data") or ""
    assoc_time = _assoc_time(call)
    items = [
        NewAssociation(name, id1, id2, data, assoc_time)
        for id2 in _arg(call.args.get_int_list("obj_ids"), "obj_ids")
    ]
    await _store(call).set_associations(_tenant(call), items)
    return _done()


async def remove_association(call: MethodCall) -> object:
    key = AssociationKey(_str(call, "name"), _int(call, "obj_id1"), _int(call, "obj_id2"))
    await _store(call).remove_associations(_tenant(call), [key])
    return _done()


async def remove_associations(call: MethodCall) -> object:
    """The associations of ``obj_id1`` with each of ``obj_ids``."""
    name, id1 = _str(call, "name"), _int(call, "obj_id1")
    keys = [
        AssociationKey(name, id1, id2) for id2 in _arg(call.args.get_int_list("obj_ids"), "obj_ids")
    ]
    await _store(call).remove_associations(_tenant(call), keys)
    return _done()


async def remove_associated_objects(call: MethodCall) -> object:
    await _store(call).remove_associated_objects(
        _tenant(call), _str(call, "name"), _int(call, "obj_id")
    )
    return _done()


async def get_associated_objects(call: MethodCall) -> object:
    found = await _store(call).get_associated_objects(
        call.app.id, _str(call, "name"), _int(call, "obj_id")
    )
    no_data = bool(call.args.get_bool("no_data", False))
    return [_association(a, no_data=no_data, full=False) for a in found]


async def get_associated_object_count(call: MethodCall) -> object:
    counts = await _store(call).count_associated_objects(
        call.app.id, _str(call, "name"), [_int(call, "obj_id")]
    )
    return {"value": counts[0]}


async def get_associated_object_counts(call: MethodCall) -> object:
    obj_ids = _arg(call.args.get_int_list("obj_ids"), "obj_ids")
    counts = await _store(call).count_associated_objects(call.app.id, _str(call, "name"), obj_ids)
    return [{"value": count} for count in counts]


async def get_associations(call: MethodCall) -> object:
    found = await _store(call).get_associations(
        call.app.id, _int(call, "obj_id1"), _int(call, "obj_id2")
    )
    no_data = bool(call.args.get_bool("no_data", False))
    return [_association(a, no_data=no_data, full=True) for a in found]


# --- the declarations ----------------------------------------------------------


def _name(name: str, description: str, *, required: bool = True) -> Param:
    return Param(name, ParamType.NAME, required=required, max_length=32, description=description)


def _id(name: str, description: str) -> Param:
    return Param(
        name,
        ParamType.INT,
        required=True,
        min_value=1,
        max_value=INT64_MAX,
        max_length=20,
        description=description,
    )


def _ids(name: str, description: str) -> Param:
    return Param(
        name,
        ParamType.INT_LIST,
        required=True,
        min_value=1,
        max_value=INT64_MAX,
        max_items=MAX_IDS,
        max_length=MAX_IDS * 21 + 2,
        description=description,
    )


def _flag(name: str, description: str) -> Param:
    return Param(name, ParamType.BOOL, max_length=5, description=description)


OBJ_TYPE = _name("obj_type", "an object type")
PROP_NAME = _name("prop_name", "a property of the object type")
NEW_NAME = _name("new_name", "the new name")
ASSOC_NAME = _name("name", "an association")
OBJ_ID = _id("obj_id", "an object id")
PREF_ID = Param(
    "pref_id",
    ParamType.INT,
    required=True,
    min_value=0,
    max_value=MAX_PREF_ID,
    max_length=10,
    description=f"a preference, 0 to {MAX_PREF_ID}",
)
PROP_NAMES = Param(
    "prop_names",
    ParamType.NAME_LIST,
    max_items=MAX_IDS,
    max_length=MAX_IDS * 36,
    description="properties to return (default: all), a comma list or JSON array",
)
KEY = Param(
    "key", required=True, max_length=HASH_KEY_MAX_CHARS, description="a hash key (any text)"
)
VALUE_MAX_CHARS = TEXT_MAX_BYTES  # a text property holds at most this many bytes
PROPERTIES = Param(
    "properties",
    ParamType.JSON_OBJECT,
    max_length=MAX_JSON_CHARS,
    description='property values, a JSON object: {"title": "…", "pages": 12}',
)
ASSOC_DATA = Param(
    "data",
    max_length=ASSOC_DATA_MAX_CHARS,
    description=f"at most {ASSOC_DATA_MAX_CHARS} characters",
)
ASSOC_TIME = Param(
    "assoc_time",
    ParamType.INT,
    min_value=0,
    max_value=INT64_MAX,
    max_length=20,
    description="Unix seconds (default: now)",
)
NO_DATA = _flag("no_data", "leave out each association's data")


# The store's codes (PROTOCOL §4 "data"), which any data method may answer.
DATA_STORE_ERRORS = (
    Code.DATA_STORE_UNKNOWN,
    Code.INVALID_OPERATION,
    Code.QUOTA_EXCEEDED,
    Code.OBJECT_NOT_FOUND,
    Code.OBJECT_EXISTS,
    Code.DATABASE_ERROR,
)


def _method(
    name: str,
    handler: Handler,
    description: str,
    *params: Param,
    per_user: bool = False,
) -> MethodSpec:
    return MethodSpec(
        name=f"data.{name}",
        handler=_answering(handler),
        params=params,
        scope="data",
        needs_user=per_user,
        batchable=True,
        description=description,
        errors=DATA_STORE_ERRORS,
    )


METHODS: tuple[MethodSpec, ...] = (
    # preferences (per user)
    _method(
        "getUserPreference",
        get_user_preference,
        'The user\'s preference ("" when unset).',
        PREF_ID,
        per_user=True,
    ),
    _method(
        "setUserPreference",
        set_user_preference,
        'Set the user\'s preference ("" or "0" deletes it).',
        PREF_ID,
        Param(
            "value",
            required=True,
            max_length=PREF_VALUE_MAX_CHARS,
            description=f"at most {PREF_VALUE_MAX_CHARS} characters",
        ),
        per_user=True,
    ),
    _method(
        "getUserPreferences",
        get_user_preferences,
        "Every preference the user has set, by pref_id.",
        per_user=True,
    ),
    _method(
        "setUserPreferences",
        set_user_preferences,
        "Set several preferences at once (all or none).",
        Param(
            "values",
            ParamType.JSON_OBJECT,
            required=True,
            max_length=MAX_JSON_CHARS,
            description='a JSON object {"<pref_id>": "<value>", …}',
        ),
        _flag("replace", "delete every preference not in values"),
        per_user=True,
    ),
    # object types and properties
    _method(
        "createObjectType", create_object_type, "Create an object type.", _name("name", "its name")
    ),
    _method(
        "dropObjectType",
        drop_object_type,
        "Delete an object type with its properties, objects and hash keys.",
        OBJ_TYPE,
    ),
    _method("renameObjectType", rename_object_type, "Rename an object type.", OBJ_TYPE, NEW_NAME),
    _method(
        "defineObjectProperty",
        define_object_property,
        "Add a property to an object type.",
        OBJ_TYPE,
        PROP_NAME,
        Param(
            "prop_type",
            ParamType.INT,
            required=True,
            min_value=1,
            max_value=3,
            max_length=1,
            description="1 integer, 2 string (≤ 255 characters), 3 text (≤ 64 KiB)",
        ),
    ),
    _method(
        "undefineObjectProperty",
        undefine_object_property,
        "Remove a property (and its values) from an object type.",
        OBJ_TYPE,
        PROP_NAME,
    ),
    _method(
        "renameObjectProperty",
        rename_object_property,
        "Rename a property of an object type.",
        OBJ_TYPE,
        PROP_NAME,
        NEW_NAME,
    ),
    _method("getObjectTypes", get_object_types, "The app's object types, by name."),
    _method("getObjectType", get_object_type, "The properties of an object type.", OBJ_TYPE),
    # objects
    _method(
        "createObject",
        create_object,
        "Create an object; answers its obj_id.",
        OBJ_TYPE,
        PROPERTIES,
    ),
    _method(
        "updateObject",
        update_object,
        "Set properties of an object (replace: unset the others).",
        OBJ_ID,
        Param(
            "properties",
            ParamType.JSON_OBJECT,
            required=True,
            max_length=MAX_JSON_CHARS,
            description=PROPERTIES.description,
        ),
        _flag("replace", "unset every property not in properties"),
    ),
    _method("deleteObject", delete_object, "Delete an object.", OBJ_ID),
    _method(
        "deleteObjects",
        delete_objects,
        "Delete objects (all of them, or none when one does not exist).",
        _ids("obj_ids", "object ids, a comma list or JSON array"),
    ),
    _method("getObject", get_object, "An object's properties.", OBJ_ID, PROP_NAMES),
    _method(
        "getObjects",
        get_objects,
        "Objects' properties, in the order asked.",
        _ids("obj_ids", "object ids, a comma list or JSON array"),
        PROP_NAMES,
    ),
    _method(
        "getObjectProperty",
        get_object_property,
        'One property of an object ("" when unset).',
        OBJ_ID,
        PROP_NAME,
    ),
    _method(
        "setObjectProperty",
        set_object_property,
        "Set one property of an object.",
        OBJ_ID,
        PROP_NAME,
        Param(
            "prop_value",
            required=True,
            max_length=VALUE_MAX_CHARS,
            description="the value (an integer property takes decimal text)",
        ),
    ),
    # hash keys
    _method(
        "getHashValue",
        get_hash_value,
        'A property value by hash key ("" when unset).',
        OBJ_TYPE,
        KEY,
        PROP_NAME,
    ),
    _method(
        "setHashValue",
        set_hash_value,
        "Set a property value by hash key.",
        OBJ_TYPE,
        KEY,
        Param("value", required=True, max_length=VALUE_MAX_CHARS, description="the value"),
        PROP_NAME,
    ),
    _method(
        "incHashValue",
        inc_hash_value,
        "Atomically add to an integer property by hash key; answers the new value.",
        OBJ_TYPE,
        KEY,
        PROP_NAME,
        Param(
            "increment",
            ParamType.INT,
            min_value=INT64_MIN,
            max_value=INT64_MAX,
            max_length=20,
            description="how much to add (default 1; may be negative)",
        ),
    ),
    _method("removeHashKey", remove_hash_key, "Remove a hash key and its values.", OBJ_TYPE, KEY),
    _method(
        "removeHashKeys",
        remove_hash_keys,
        "Remove hash keys and their values.",
        OBJ_TYPE,
        Param(
            "keys",
            ParamType.STR_LIST,
            required=True,
            max_items=MAX_IDS,
            max_length=MAX_JSON_CHARS,
            description="hash keys, a JSON array (or a comma list)",
        ),
    ),
    # associations
    _method(
        "defineAssociation",
        define_association,
        "Define an association: 1 one-way, 2 two-way symmetric, 3 two-way asymmetric.",
        ASSOC_NAME,
        Param(
            "assoc_type",
            ParamType.INT,
            required=True,
            min_value=1,
            max_value=3,
            max_length=1,
            description="1 one-way, 2 two-way symmetric, 3 two-way asymmetric",
        ),
        *(
            Param(
                side,
                ParamType.JSON_OBJECT,
                max_length=1024,
                description='{"alias": "…", "object_type": "…", "unique": false}',
            )
            for side in ("assoc_info1", "assoc_info2")
        ),
        _name("inverse", "the inverse association (assoc_type 3 only)", required=False),
    ),
    _method(
        "undefineAssociation",
        undefine_association,
        "Remove an association definition (and its inverse) with every association.",
        ASSOC_NAME,
    ),
    _method(
        "renameAssociation", rename_association, "Rename an association.", ASSOC_NAME, NEW_NAME
    ),
    _method(
        "getAssociationDefinition",
        get_association_definition,
        "An association's definition.",
        ASSOC_NAME,
    ),
    _method(
        "getAssociationDefinitions",
        get_association_definitions,
        "Every association definition of the app, by name.",
    ),
    _method(
        "setAssociation",
        set_association,
        "Associate obj_id1 with obj_id2 (and back, for two-way kinds).",
        ASSOC_NAME,
        _id("obj_id1", "an id (object, user or any 64-bit id)"),
        _id("obj_id2", "an id (object, user or any 64-bit id)"),
        ASSOC_DATA,
        ASSOC_TIME,
    ),
    _method(
        "setAssociations",
        set_associations,
        "Associate obj_id1 with each of obj_ids (all or none).",
        ASSOC_NAME,
        _id("obj_id1", "an id (object, user or any 64-bit id)"),
        _ids("obj_ids", "ids, a comma list or JSON array"),
        ASSOC_DATA,
        ASSOC_TIME,
    ),
    _method(
        "removeAssociation",
        remove_association,
        "Remove an association (and its reverse).",
        ASSOC_NAME,
        _id("obj_id1", "an id"),
        _id("obj_id2", "an id"),
    ),
    _method(
        "removeAssociations",
        remove_associations,
        "Remove the associations of obj_id1 with each of obj_ids.",
        ASSOC_NAME,
        _id("obj_id1", "an id"),
        _ids("obj_ids", "ids, a comma list or JSON array"),
    ),
    _method(
        "removeAssociatedObjects",
        remove_associated_objects,
        "Remove every association of a kind from an id.",
        ASSOC_NAME,
        OBJ_ID,
    ),
    _method(
        "getAssociatedObjects",
        get_associated_objects,
        "The ids associated with an id, newest first.",
        ASSOC_NAME,
        OBJ_ID,
        NO_DATA,
    ),
    _method(
        "getAssociatedObjectCount",
        get_associated_object_count,
        "How many ids are associated with an id.",
        ASSOC_NAME,
        OBJ_ID,
    ),
    _method(
        "getAssociatedObjectCounts",
        get_associated_object_counts,
        "How many ids are associated with each id, in the order asked.",
        ASSOC_NAME,
        _ids("obj_ids", "ids, a comma list or JSON array"),
    ),
    _method(
        "getAssociations",
        get_associations,
        "Every association from obj_id1 to obj_id2.",
        _id("obj_id1", "an id"),
        _id("obj_id2", "an id"),
        NO_DATA,
    ),
)
