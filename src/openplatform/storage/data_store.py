"""The data store of PROTOCOL §4 "data": what the ``data.*`` methods ask of
storage, as one interface (:class:`DataStore`), its values, its errors and its
limits. The SQL implementation is :mod:`openplatform.storage.sql_data_store`.

Every app has a store of its own: nothing an app stores is visible to
another, and object ids are numbered per app. Preferences are per user of the
app (Facebook's model); object types, objects, hash keys and associations
belong to the app.

Storage quota (``storage_quota_bytes``, PROTOCOL §5): every stored row is
charged :data:`ROW_BYTES` plus the UTF-8 bytes of its text (names, keys,
string and text values, association data and definitions); integers cost
nothing beyond the row, so an increment never changes what an app uses. A
row records what it was charged, and deleting it gives exactly that back. A
write that would take an app past its quota changes nothing (:class:`QuotaExceeded`).

Errors: :class:`~openplatform.storage.errors.NotFoundError` (an unknown type,
object or association), :class:`~openplatform.storage.errors.DuplicateError`
(a name already used), :class:`InvalidOperation` (a property not defined on
the type, or an operation its type does not allow), :class:`QuotaExceeded`,
:class:`InvalidValue` (a value its property cannot hold), and
:class:`~openplatform.storage.errors.DatabaseUnavailable` once bounded
retries are spent — nothing half-written: a write either happened whole or
not at all (not at all, unless the failure hit its COMMIT).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from openplatform.storage.errors import StorageError

__all__ = [
    "ASSOC_DATA_MAX_CHARS",
    "HASH_KEY_MAX_CHARS",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_PREF_ID",
    "PREF_VALUE_MAX_CHARS",
    "ROW_BYTES",
    "STRING_MAX_CHARS",
    "TEXT_MAX_BYTES",
    "AssocInfo",
    "AssocType",
    "Association",
    "AssociationDefinition",
    "AssociationKey",
    "DataStore",
    "InvalidOperation",
    "InvalidValue",
    "NewAssociation",
    "Preference",
    "PropType",
    "PropertyDefinition",
    "QuotaExceeded",
    "StoredObject",
    "Tenant",
    "Value",
    "check_text",
    "check_value",
    "text_bytes",
]

MAX_PREF_ID = 200
PREF_VALUE_MAX_CHARS = 128
STRING_MAX_CHARS = 255
TEXT_MAX_BYTES = 64 * 1024
HASH_KEY_MAX_CHARS = 255
ASSOC_DATA_MAX_CHARS = 255
ROW_BYTES = 16
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_INTEGER = re.compile(r"-?[0-9]{1,19}")

Value = int | str


class InvalidOperation(StorageError):
    """801: the operation is not valid for the type (a property not defined on
    it, ``incHashValue`` on a string, a counter that would overflow)."""


class QuotaExceeded(StorageError):
    """802: the write would take the app past its storage quota."""


class InvalidValue(StorageError):
    """100: a value its property cannot hold (not an integer, too long)."""


class PropType(enum.IntEnum):
    """``prop_type`` of ``defineObjectProperty``."""

    INTEGER = 1
    STRING = 2  # at most STRING_MAX_CHARS characters
    TEXT = 3  # at most TEXT_MAX_BYTES bytes (UTF-8)


class AssocType(enum.IntEnum):
    """``assoc_type`` of ``defineAssociation``."""

    ONE_WAY = 1
    SYMMETRIC = 2  # setting id1 → id2 sets id2 → id1 too
    ASYMMETRIC = 3  # setting id1 → id2 sets id2 → id1 in the inverse association


@dataclass(frozen=True, slots=True)
class Tenant:
    """The app whose store a write changes, and its quota in bytes."""

    app_id: int
    quota_bytes: int


@dataclass(frozen=True, slots=True)
class Preference:
    pref_id: int
    value: str


@dataclass(frozen=True, slots=True)
class PropertyDefinition:
    name: str
    prop_type: PropType


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object and the values of the properties asked for (None: unset), in
    the order asked (or the type's definition order)."""

    obj_id: int
    values: dict[str, Value | None]


@dataclass(frozen=True, slots=True)
class AssocInfo:
    """One side of an association: what its ids are (``alias``,
    ``object_type``; descriptive only), and whether an id on this side may
    take part in one association of the kind at most (``unique``)."""

    alias: str = ""
    object_type: str = ""
    unique: bool = False


@dataclass(frozen=True, slots=True)
class AssociationDefinition:
    name: str
    assoc_type: AssocType
    assoc_info1: AssocInfo
    assoc_info2: AssocInfo
    inverse: str | None  # the inverse association of an asymmetric one


@dataclass(frozen=True, slots=True)
class AssociationKey:
    """Which association: ``name`` from ``id1`` to ``id2``."""

    name: str
    id1: int
    id2: int


@dataclass(frozen=True, slots=True)
class NewAssociation:
    """An association to set; ``time`` in Unix seconds."""

    name: str
    id1: int
    id2: int
    data: str
    time: int


@dataclass(frozen=True, slots=True)
class Association:
    name: str
    id1: int
    id2: int
    data: str
    time: int


def text_bytes(text: str) -> int:
    """What ``text`` costs against the quota: its UTF-8 length."""
    return len(text.encode("utf-8"))


def check_text(what: str, text: str) -> str:
    """Text a database can hold: no NUL character (PostgreSQL refuses it)."""
    if "\x00" in text:
        raise InvalidValue(f"{what}: NUL characters cannot be stored")
    return text


def check_value(what: str, prop_type: PropType, value: object) -> Value:
    """``value`` as a property of ``prop_type`` stores it: integers from JSON
    numbers or decimal text (64-bit), strings of at most
    :data:`STRING_MAX_CHARS` characters, texts of at most :data:`TEXT_MAX_BYTES`."""
    if prop_type is PropType.INTEGER:
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"{what}: must be an integer")
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidValue(f"{what}: must be a 64-bit integer")
        return value
    if not isinstance(value, str):
        raise InvalidValue(f"{what}: must be a string")
    if prop_type is PropType.STRING and len(value) > STRING_MAX_CHARS:
        raise InvalidValue(f"{what}: at most {STRING_MAX_CHARS} characters")
    if prop_type is PropType.TEXT and text_bytes(value) > TEXT_MAX_BYTES:
        raise InvalidValue(f"{what}: at most {TEXT_MAX_BYTES} bytes")
    return check_text(what, value)


class DataStore(Protocol):
    """The per-app data store (PROTOCOL §4 "data"). Reads take the app id;
    writes take the :class:`Tenant` whose quota they are charged to. Every
    write is one transaction: all of it happens, or nothing."""

    # preferences (per user of the app)
    async def get_preference(self, app_id: int, user_id: int, pref_id: int) -> str:
        """The value, "" when unset."""
        ...

    async def get_preferences(self, app_id: int, user_id: int) -> list[Preference]:
        """Every set preference, by ``pref_id``."""
        ...

    async def set_preferences(
        self, tenant: Tenant, user_id: int, values: Mapping[int, str], *, replace: bool
    ) -> None:
        """Set each value ("" or "0" deletes); ``replace``: delete the others."""
        ...

    # object types and their properties
    async def create_type(self, tenant: Tenant, name: str) -> None: ...

    async def drop_type(self, tenant: Tenant, name: str) -> None:
        """The type, its properties, objects and hash keys."""
        ...

    async def rename_type(self, tenant: Tenant, name: str, new_name: str) -> None: ...

    async def get_types(self, app_id: int) -> list[str]:
        """Type names, sorted."""
        ...

    async def get_type(self, app_id: int, name: str) -> list[PropertyDefinition]:
        """The type's properties, in definition order."""
        ...

    async def define_property(
        self, tenant: Tenant, type_name: str, prop_name: str, prop_type: PropType
    ) -> None: ...

    async def undefine_property(self, tenant: Tenant, type_name: str, prop_name: str) -> None:
        """The property and every value of it (objects and hash keys)."""
        ...

    async def rename_property(
        self, tenant: Tenant, type_name: str, prop_name: str, new_name: str
    ) -> None: ...

    # objects
    async def create_object(
        self, tenant: Tenant, type_name: str, properties: Mapping[str, object]
    ) -> int:
        """The new object's id."""
        ...

    async def update_object(
        self, tenant: Tenant, obj_id: int, properties: Mapping[str, object], *, replace: bool
    ) -> None:
        """Set the given properties; ``replace``: unset the others."""
        ...

    async def delete_objects(self, tenant: Tenant, obj_ids: Sequence[int]) -> None:
        """All of them, or none when one does not exist."""
        ...

    async def get_objects(
        self, app_id: int, obj_ids: Sequence[int], prop_names: Sequence[str] | None
    ) -> list[StoredObject]:
        """In the order of ``obj_ids``; ``prop_names`` None: every property."""
        ...

    # hash keys
    async def get_hash_value(
        self, app_id: int, type_name: str, key: str, prop_name: str
    ) -> Value | None: ...

    async def set_hash_value(
        self, tenant: Tenant, type_name: str, key: str, prop_name: str, value: object
    ) -> None: ...

    async def increment_hash_value(
        self, tenant: Tenant, type_name: str, key: str, prop_name: str, increment: int
    ) -> int:
        """Atomically add ``increment`` (an unset value counts as 0); the new value."""
        ...

    async def remove_hash_keys(self, tenant: Tenant, type_name: str, keys: Sequence[str]) -> None:
        """Every value of each key (keys without values are no error)."""
        ...

    # associations
    async def define_association(
        self,
        tenant: Tenant,
        name: str,
        assoc_type: AssocType,
        info1: AssocInfo,
        info2: AssocInfo,
        inverse: str | None,
    ) -> None: ...

    async def undefine_association(self, tenant: Tenant, name: str) -> None:
        """The definition, its inverse, and all their associations."""
        ...

    async def rename_association(self, tenant: Tenant, name: str, new_name: str) -> None: ...

    async def get_association_definitions(
        self, app_id: int, names: Sequence[str] | None
    ) -> list[AssociationDefinition]:
        """The definitions named (in that order), or all of them (by name)."""
        ...

    async def set_associations(self, tenant: Tenant, items: Sequence[NewAssociation]) -> None:
        """Create or replace each association (and its reverse)."""
        ...

    async def remove_associations(self, tenant: Tenant, keys: Sequence[AssociationKey]) -> None:
        """Each association and its reverse (missing ones are no error)."""
        ...

    async def remove_associated_objects(self, tenant: Tenant, name: str, id1: int) -> None:
        """Every association ``name`` from ``id1`` (and their reverses)."""
        ...

    async def get_associated_objects(self, app_id: int, name: str, id1: int) -> list[Association]:
        """Associations ``name`` from ``id1``, newest first."""
        ...

    async def count_associated_objects(
        self, app_id: int, name: str, ids: Sequence[int]
    ) -> list[int]:
        """How many associations ``name`` each id has, in the order of ``ids``."""
        ...

    async def get_associations(self, app_id: int, id1: int, id2: int) -> list[Association]:
        """Every association of the app from ``id1`` to ``id2``, by name."""
        ...
