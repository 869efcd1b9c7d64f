"""Typed methods of the open API (PROTOCOL §4), written once for every client.

Each method is a function that builds a :class:`PreparedCall` — the method
name, its parameters under the exact names of PROTOCOL §4, how to read its
result, whether it is idempotent. :class:`Method` turns such a function into
a method of a namespace (``client.users``, ``client.data``…) whose return
type follows the namespace's runner: the value for :class:`Client`, a
coroutine for :class:`AsyncClient`, a :class:`BatchItem` for a :class:`Batch`.
The signatures, defaults and documentation are the builder's, so the sync,
async and batch APIs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from functools import update_wrapper
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from openplatform_client._calls import PreparedCall, is_idempotent
from openplatform_client._encoding import ParamValue, encode_params
from openplatform_client._results import (
    ApplicationInfo,
    AssociatedObject,
    AssociationDefinition,
    AssociationType,
    PropertyDefinition,
    PropertyType,
    UserInfo,
    as_list,
    as_mapping,
    unexpected,
)

if TYPE_CHECKING:
    from openplatform_client._batch import Batch, BatchItem
    from openplatform_client._client import AsyncClient, Client

__all__ = ["Application", "Data", "Method", "Namespace", "Users"]

P = ParamSpec("P")
T = TypeVar("T")
Runner = TypeVar("Runner")


class Namespace(Generic[Runner]):
    """A group of methods (``users``, ``data``…) bound to a client or batch."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner


class Method(Generic[P, T]):
    """A typed API method: :func:`build` makes the call, the namespace's
    runner sends it (or queues it, in a batch)."""

    def __init__(self, build: Callable[P, PreparedCall[T]]) -> None:
        self.build = build
        update_wrapper(self, build)  # type: ignore[arg-type]

    @overload
    def __get__(self, obj: None, owner: object) -> Method[P, T]: ...
    @overload
    def __get__(self, obj: Namespace[Client], owner: object) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, obj: Namespace[AsyncClient], owner: object
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __get__(self, obj: Namespace[Batch], owner: object) -> Callable[P, BatchItem[T]]: ...
    def __get__(self, obj: Namespace[Any] | None, owner: object) -> object:
        if obj is None:
            return self
        build = self.build
        runner = obj._runner

        def bound(*args: P.args, **kwargs: P.kwargs) -> object:
            return runner._execute(build(*args, **kwargs))

        return update_wrapper(bound, build)


def _call(method: str, decode: Callable[[object], T], **params: ParamValue) -> PreparedCall[T]:
    return PreparedCall(method, encode_params(params), decode, is_idempotent(method))


def _acknowledged(result: object) -> None:
    """A method that only acts answers ``{"result": true}``."""
    if as_mapping(result, '{"result": true}').get("result") is not True:
        raise unexpected('{"result": true}', result)


def _flag(result: object) -> bool:
    value = as_mapping(result, '{"result": true|false}').get("result")
    if not isinstance(value, bool):
        raise unexpected('{"result": true|false}', result)
    return value


def _value(result: object) -> object:
    data = as_mapping(result, '{"value": …}')
    if "value" not in data:
        raise unexpected('{"value": …}', result)
    return data["value"]


def _int_value(result: object) -> int:
    value = _value(result)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise unexpected('{"value": <integer>}', result)
    return int(value)


def _str_value(result: object) -> str:
    return str(_value(result))


def _object(result: object) -> dict[str, object]:
    return dict(as_mapping(result, "an object"))


def _objects(result: object) -> list[dict[str, object]]:
    return [_object(item) for item in as_list(result, "a list of objects")]


# --- users.*, application.* ------------------------------------------------------------


def users_get_info(
    uids: Sequence[int] | None = None, fields: Sequence[str] | None = None
) -> PreparedCall[list[UserInfo]]:
    """``users.getInfo``: profiles in the order of ``uids`` (default: the
    caller's user), each with ``uid`` and ``fields`` (default: uid,
    username, display_name)."""
    return _call(
        "users.getInfo",
        lambda result: [UserInfo.from_result(item) for item in as_list(result, "a user list")],
        uids=uids,
        fields=fields,
    )


def users_get_logged_in_user() -> PreparedCall[int]:
    """``users.getLoggedInUser``: the uid of the user the credential acts for."""

    def decode(result: object) -> int:
        uid = as_mapping(result, '{"uid": n}').get("uid")
        if not isinstance(uid, int):
            raise unexpected('{"uid": n}', result)
        return uid

    return _call("users.getLoggedInUser", decode)


def users_has_app_permission(ext_perm: str) -> PreparedCall[bool]:
    """``users.hasAppPermission``: whether the user granted the app ``ext_perm``."""
    return _call("users.hasAppPermission", _flag, ext_perm=ext_perm)


def users_is_app_user(uid: int | None = None) -> PreparedCall[bool]:
    """``users.isAppUser``: whether ``uid`` (default: the caller's user) has
    authorized the app and not revoked it."""
    return _call("users.isAppUser", _flag, uid=uid)


def application_get_public_info(
    application_id: int | None = None, application_api_key: str | None = None
) -> PreparedCall[ApplicationInfo]:
    """``application.getPublicInfo``: an active app's public information."""
    return _call(
        "application.getPublicInfo",
        ApplicationInfo.from_result,
        application_id=application_id,
        application_api_key=application_api_key,
    )


class Users(Namespace[Runner]):
    """``users.*`` methods."""

    get_info = Method(users_get_info)
    get_logged_in_user = Method(users_get_logged_in_user)
    has_app_permission = Method(users_has_app_permission)
    is_app_user = Method(users_is_app_user)


class Application(Namespace[Runner]):
    """``application.*`` methods."""

    get_public_info = Method(application_get_public_info)


# --- data.*: preferences ---------------------------------------------------------------


def data_get_user_preference(pref_id: int) -> PreparedCall[str]:
    """``data.getUserPreference``: preference ``pref_id`` (0–200); ``""`` when unset."""
    return _call("data.getUserPreference", _str_value, pref_id=pref_id)


def data_set_user_preference(pref_id: int, value: str) -> PreparedCall[None]:
    """``data.setUserPreference``: ``value`` at most 128 characters; ``""`` or ``"0"`` deletes."""
    return _call("data.setUserPreference", _acknowledged, pref_id=pref_id, value=value)


def data_get_user_preferences() -> PreparedCall[dict[int, str]]:
    """``data.getUserPreferences``: every preference that is set, by ``pref_id``."""

    def decode(result: object) -> dict[int, str]:
        prefs: dict[int, str] = {}
        for item in as_list(result, "a list of preferences"):
            pref = as_mapping(item, '{"pref_id", "value"}')
            prefs[int(str(pref.get("pref_id")))] = str(pref.get("value", ""))
        return prefs

    return _call("data.getUserPreferences", decode)


def data_set_user_preferences(
    values: Mapping[int, str], replace: bool = False
) -> PreparedCall[None]:
    """``data.setUserPreferences``: several at once; ``replace`` deletes those not given."""
    return _call(
        "data.setUserPreferences",
        _acknowledged,
        values={str(pref_id): value for pref_id, value in values.items()},
        replace=replace,
    )


# --- data.*: object types and properties ----------------------------------------------


def data_create_object_type(name: str) -> PreparedCall[None]:
    """``data.createObjectType``: ``name`` matches ``[a-z][a-z0-9_]{0,31}``; 804 if used."""
    return _call("data.createObjectType", _acknowledged, name=name)


def data_drop_object_type(obj_type: str) -> PreparedCall[None]:
    """``data.dropObjectType``: the type and all its objects."""
    return _call("data.dropObjectType", _acknowledged, obj_type=obj_type)


def data_rename_object_type(obj_type: str, new_name: str) -> PreparedCall[None]:
    """``data.renameObjectType``."""
    return _call("data.renameObjectType", _acknowledged, obj_type=obj_type, new_name=new_name)


def data_define_object_property(
    obj_type: str, prop_name: str, prop_type: PropertyType | int
) -> PreparedCall[None]:
    """``data.defineObjectProperty``: ``prop_type`` 1 integer, 2 string
    (≤ 255), 3 text (≤ 64 KiB)."""
    return _call(
        "data.defineObjectProperty",
        _acknowledged,
        obj_type=obj_type,
        prop_name=prop_name,
        prop_type=int(prop_type),
    )


def data_undefine_object_property(obj_type: str, prop_name: str) -> PreparedCall[None]:
    """``data.undefineObjectProperty``."""
    return _call(
        "data.undefineObjectProperty", _acknowledged, obj_type=obj_type, prop_name=prop_name
    )


def data_rename_object_property(obj_type: str, prop_name: str, new_name: str) -> PreparedCall[None]:
    """``data.renameObjectProperty``."""
    return _call(
        "data.renameObjectProperty",
        _acknowledged,
        obj_type=obj_type,
        prop_name=prop_name,
        new_name=new_name,
    )


def data_get_object_types() -> PreparedCall[list[str]]:
    """``data.getObjectTypes``: the names of the app's object types."""

    def decode(result: object) -> list[str]:
        items = as_list(result, "a list of types")
        return [str(as_mapping(item, '{"name"}').get("name")) for item in items]

    return _call("data.getObjectTypes", decode)


def data_get_object_type(obj_type: str) -> PreparedCall[list[PropertyDefinition]]:
    """``data.getObjectType``: the type's properties."""
    return _call(
        "data.getObjectType",
        lambda result: [
            PropertyDefinition.from_result(item) for item in as_list(result, "a property list")
        ],
        obj_type=obj_type,
    )


# --- data.*: objects -------------------------------------------------------------------


def data_create_object(
    obj_type: str, properties: Mapping[str, object] | None = None
) -> PreparedCall[int]:
    """``data.createObject``: the new object's ``obj_id``."""

    def decode(result: object) -> int:
        obj_id = as_mapping(result, '{"obj_id": n}').get("obj_id")
        if not isinstance(obj_id, int):
            raise unexpected('{"obj_id": n}', result)
        return obj_id

    return _call("data.createObject", decode, obj_type=obj_type, properties=properties)


def data_update_object(
    obj_id: int, properties: Mapping[str, object], replace: bool = False
) -> PreparedCall[None]:
    """``data.updateObject``: ``replace=True`` replaces every property,
    ``False`` merges ``properties`` in."""
    return _call(
        "data.updateObject", _acknowledged, obj_id=obj_id, properties=properties, replace=replace
    )


def data_delete_object(obj_id: int) -> PreparedCall[None]:
    """``data.deleteObject``."""
    return _call("data.deleteObject", _acknowledged, obj_id=obj_id)


def data_delete_objects(obj_ids: Sequence[int]) -> PreparedCall[None]:
    """``data.deleteObjects``."""
    return _call("data.deleteObjects", _acknowledged, obj_ids=obj_ids)


def data_get_object(
    obj_id: int, prop_names: Sequence[str] | None = None
) -> PreparedCall[dict[str, object]]:
    """``data.getObject``: ``{"obj_id": n, <prop>: <value>, …}`` (every
    property, or ``prop_names``)."""
    return _call("data.getObject", _object, obj_id=obj_id, prop_names=prop_names)


def data_get_objects(
    obj_ids: Sequence[int], prop_names: Sequence[str] | None = None
) -> PreparedCall[list[dict[str, object]]]:
    """``data.getObjects``: as :func:`data_get_object`, in the order of ``obj_ids``."""
    return _call("data.getObjects", _objects, obj_ids=obj_ids, prop_names=prop_names)


def data_get_object_property(obj_id: int, prop_name: str) -> PreparedCall[object]:
    """``data.getObjectProperty``: the value (an int or a str)."""
    return _call("data.getObjectProperty", _value, obj_id=obj_id, prop_name=prop_name)


def data_set_object_property(
    obj_id: int, prop_name: str, prop_value: str | int
) -> PreparedCall[None]:
    """``data.setObjectProperty``."""
    return _call(
        "data.setObjectProperty",
        _acknowledged,
        obj_id=obj_id,
        prop_name=prop_name,
        prop_value=prop_value,
    )


# --- data.*: hash keys -----------------------------------------------------------------


def data_get_hash_value(obj_type: str, key: str, prop_name: str) -> PreparedCall[object]:
    """``data.getHashValue``: the value of ``prop_name`` of the object under
    ``key``; ``""`` when unset."""
    return _call("data.getHashValue", _value, obj_type=obj_type, key=key, prop_name=prop_name)


def data_set_hash_value(
    obj_type: str, key: str, value: str | int, prop_name: str
) -> PreparedCall[None]:
    """``data.setHashValue``: creates the object under ``key`` when needed."""
    return _call(
        "data.setHashValue",
        _acknowledged,
        obj_type=obj_type,
        key=key,
        value=value,
        prop_name=prop_name,
    )


def data_inc_hash_value(
    obj_type: str, key: str, prop_name: str, increment: int = 1
) -> PreparedCall[int]:
    """``data.incHashValue``: adds ``increment`` atomically; the new value.
    Not idempotent: never resent after an answer that leaves open whether it ran."""
    return _call(
        "data.incHashValue",
        _int_value,
        obj_type=obj_type,
        key=key,
        prop_name=prop_name,
        increment=increment,
    )


def data_remove_hash_key(obj_type: str, key: str) -> PreparedCall[None]:
    """``data.removeHashKey``."""
    return _call("data.removeHashKey", _acknowledged, obj_type=obj_type, key=key)


def data_remove_hash_keys(obj_type: str, keys: Sequence[str]) -> PreparedCall[None]:
    """``data.removeHashKeys``."""
    return _call("data.removeHashKeys", _acknowledged, obj_type=obj_type, keys=keys)


# --- data.*: associations --------------------------------------------------------------


def data_define_association(
    name: str,
    assoc_type: AssociationType | int,
    assoc_info1: Mapping[str, object] | str,
    assoc_info2: Mapping[str, object] | str,
    inverse: str | None = None,
) -> PreparedCall[None]:
    """``data.defineAssociation``: ``assoc_type`` 1 one-way, 2 two-way
    symmetric, 3 two-way asymmetric (``inverse`` names the other direction)."""
    return _call(
        "data.defineAssociation",
        _acknowledged,
        name=name,
        assoc_type=int(assoc_type),
        assoc_info1=assoc_info1,
        assoc_info2=assoc_info2,
        inverse=inverse,
    )


def data_undefine_association(name: str) -> PreparedCall[None]:
    """``data.undefineAssociation``."""
    return _call("data.undefineAssociation", _acknowledged, name=name)


def data_rename_association(name: str, new_name: str) -> PreparedCall[None]:
    """``data.renameAssociation``."""
    return _call("data.renameAssociation", _acknowledged, name=name, new_name=new_name)


def data_get_association_definition(name: str) -> PreparedCall[AssociationDefinition]:
    """``data.getAssociationDefinition``."""
    return _call("data.getAssociationDefinition", AssociationDefinition.from_result, name=name)


def data_get_association_definitions() -> PreparedCall[list[AssociationDefinition]]:
    """``data.getAssociationDefinitions``: every association of the app."""
    return _call(
        "data.getAssociationDefinitions",
        lambda result: [
            AssociationDefinition.from_result(item)
            for item in as_list(result, "a list of association definitions")
        ],
    )


def data_set_association(
    name: str,
    obj_id1: int,
    obj_id2: int,
    data: str | None = None,
    assoc_time: int | None = None,
) -> PreparedCall[None]:
    """``data.setAssociation``: ``assoc_time`` (Unix seconds) defaults to now."""
    return _call(
        "data.setAssociation",
        _acknowledged,
        name=name,
        obj_id1=obj_id1,
        obj_id2=obj_id2,
        data=data,
        assoc_time=assoc_time,
    )


def data_set_associations(
    name: str,
    obj_id1: int,
    obj_ids: Sequence[int],
    data: str | None = None,
    assoc_time: int | None = None,
) -> PreparedCall[None]:
    """``data.setAssociations``: associates ``obj_id1`` with each of ``obj_ids``."""
    return _call(
        "data.setAssociations",
        _acknowledged,
        name=name,
        obj_id1=obj_id1,
        obj_ids=obj_ids,
        data=data,
        assoc_time=assoc_time,
    )


def data_remove_association(name: str, obj_id1: int, obj_id2: int) -> PreparedCall[None]:
    """``data.removeAssociation``."""
    return _call(
        "data.removeAssociation", _acknowledged, name=name, obj_id1=obj_id1, obj_id2=obj_id2
    )


def data_remove_associations(name: str, obj_id1: int, obj_ids: Sequence[int]) -> PreparedCall[None]:
    """``data.removeAssociations``: between ``obj_id1`` and each of ``obj_ids``."""
    return _call(
        "data.removeAssociations", _acknowledged, name=name, obj_id1=obj_id1, obj_ids=obj_ids
    )


def data_remove_associated_objects(name: str, obj_id: int) -> PreparedCall[None]:
    """``data.removeAssociatedObjects``: every association ``name`` of ``obj_id``."""
    return _call("data.removeAssociatedObjects", _acknowledged, name=name, obj_id=obj_id)


def data_get_associated_objects(
    name: str, obj_id: int, no_data: bool = False
) -> PreparedCall[list[AssociatedObject]]:
    """``data.getAssociatedObjects``: ``[{"id2", "data", "time"}]``."""
    return _call(
        "data.getAssociatedObjects",
        lambda result: [
            AssociatedObject.from_result(item)
            for item in as_list(result, "a list of associated objects")
        ],
        name=name,
        obj_id=obj_id,
        no_data=no_data,
    )


def data_get_associated_object_count(name: str, obj_id: int) -> PreparedCall[int]:
    """``data.getAssociatedObjectCount``."""
    return _call("data.getAssociatedObjectCount", _int_value, name=name, obj_id=obj_id)


def data_get_associated_object_counts(name: str, obj_ids: Sequence[int]) -> PreparedCall[list[int]]:
    """``data.getAssociatedObjectCounts``: in the order of ``obj_ids``."""
    return _call(
        "data.getAssociatedObjectCounts",
        lambda result: [_int_value(item) for item in as_list(result, "a list of counts")],
        name=name,
        obj_ids=obj_ids,
    )


def data_get_associations(
    obj_id1: int, obj_id2: int, no_data: bool = False
) -> PreparedCall[list[dict[str, object]]]:
    """``data.getAssociations``: the associations between two objects."""
    return _call(
        "data.getAssociations", _objects, obj_id1=obj_id1, obj_id2=obj_id2, no_data=no_data
    )


class Data(Namespace[Runner]):
    """``data.*`` methods: the app's data store (user-scoped calls need the
    ``data`` scope)."""

    get_user_preference = Method(data_get_user_preference)
    set_user_preference = Method(data_set_user_preference)
    get_user_preferences = Method(data_get_user_preferences)
    set_user_preferences = Method(data_set_user_preferences)

    create_object_type = Method(data_create_object_type)
    drop_object_type = Method(data_drop_object_type)
    rename_object_type = Method(data_rename_object_type)
    define_object_property = Method(data_define_object_property)
    undefine_object_property = Method(data_undefine_object_property)
    rename_object_property = Method(data_rename_object_property)
    get_object_types = Method(data_get_object_types)
    get_object_type = Method(data_get_object_type)

    create_object = Method(data_create_object)
    update_object = Method(data_update_object)
    delete_object = Method(data_delete_object)
    delete_objects = Method(data_delete_objects)
    get_object = Method(data_get_object)
    get_objects = Method(data_get_objects)
    get_object_property = Method(data_get_object_property)
    set_object_property = Method(data_set_object_property)

    get_hash_value = Method(data_get_hash_value)
    set_hash_value = Method(data_set_hash_value)
    inc_hash_value = Method(data_inc_hash_value)
    remove_hash_key = Method(data_remove_hash_key)
    remove_hash_keys = Method(data_remove_hash_keys)

    define_association = Method(data_define_association)
    undefine_association = Method(data_undefine_association)
    rename_association = Method(data_rename_association)
    get_association_definition = Method(data_get_association_definition)
    get_association_definitions = Method(data_get_association_definitions)
    set_association = Method(data_set_association)
    set_associations = Method(data_set_associations)
    remove_association = Method(data_remove_association)
    remove_associations = Method(data_remove_associations)
    remove_associated_objects = Method(data_remove_associated_objects)
    get_associated_objects = Method(data_get_associated_objects)
    get_associated_object_count = Method(data_get_associated_object_count)
    get_associated_object_counts = Method(data_get_associated_object_counts)
    get_associations = Method(data_get_associations)
