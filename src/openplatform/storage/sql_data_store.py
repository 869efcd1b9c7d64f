"""The data store in SQL (SQLite and PostgreSQL): :class:`SqlDataStore`.

Writes. Every write is one transaction that first locks the app's row of
``data_store_usage`` and last charges it the bytes the write added (or gives
back those it removed) with ONE conditional statement::

    UPDATE data_store_usage SET used_bytes = used_bytes + :delta
    WHERE app_id = :app AND used_bytes + :delta <= :quota

A write it refuses rolls back with everything else (802), so parallel writers
can never take an app past its quota. Locking that row first serializes the
writes of one app (SQLite serializes all writes anyway): a delete can sum the
bytes of what it deletes and no writer can add a row in between, and writers
always take their locks in the same order, so they do not deadlock.

Counters. ``incHashValue`` on a value that exists is ONE statement in
autocommit mode (``UPDATE … SET int_value = int_value + :n … RETURNING``),
which neither takes the app's lock nor changes the bytes used; the first
increment of a value inserts it with ``INSERT … ON CONFLICT DO UPDATE …
RETURNING`` under the app's lock (see :meth:`SqlDataStore.increment_hash_value`).
No counter is ever read and then written.

Failures. A transaction that fails because the database is unavailable
(connection lost, lock wait timed out, serialization failure or deadlock —
:func:`openplatform.storage.engine.is_outage`) is retried up to
:data:`ATTEMPTS` times within :data:`RETRY_BUDGET_S`; nothing of a failed
attempt was committed. A failure during COMMIT is not retried (the work may
have been done); nor is the one-statement increment unless the database
refused it before running it. Then :class:`DatabaseUnavailable` is raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import ReturningDelete

from openplatform.storage.data_store import (
    ASSOC_DATA_MAX_CHARS,
    HASH_KEY_MAX_CHARS,
    INT64_MAX,
    INT64_MIN,
    MAX_PREF_ID,
    PREF_VALUE_MAX_CHARS,
    ROW_BYTES,
    Association,
    AssociationDefinition,
    AssociationKey,
    AssocInfo,
    AssocType,
    InvalidOperation,
    InvalidValue,
    NewAssociation,
    Preference,
    PropertyDefinition,
    PropType,
    QuotaExceeded,
    StoredObject,
    Tenant,
    Value,
    check_text,
    check_value,
    text_bytes,
)
from openplatform.storage.engine import Sessions
from openplatform.storage.errors import DatabaseUnavailable, DuplicateError, NotFoundError
from openplatform.storage.models import (
    DataAssociation,
    DataAssociationDefinition,
    DataHashValue,
    DataObject,
    DataObjectProperty,
    DataObjectType,
    DataObjectValue,
    DataPreference,
    DataStoreUsage,
)

__all__ = ["ATTEMPTS", "RETRY_BUDGET_S", "SqlDataStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 3
RETRY_BUDGET_S = 8.0
_BACKOFF_S = (0.05, 0.2)
# SQLSTATEs of statements PostgreSQL refused before running them (lock wait
# timed out, serialization failure, deadlock, no connection to be had): safe
# to send again even when the statement was its own transaction.
_NOT_RUN_SQLSTATES = frozenset({"40001", "40P01", "55P03", "55000", "57P03"})

Usage = DataStoreUsage
Pref = DataPreference
Type = DataObjectType
Prop = DataObjectProperty
Obj = DataObject
ObjValue = DataObjectValue
Hash = DataHashValue
Def = DataAssociationDefinition
Assoc = DataAssociation
InverseDef = aliased(DataAssociationDefinition)

# --- statements built once (bind parameters filled per call) -----------------

_LOCK_USAGE = (
    select(Usage.used_bytes, Usage.last_object_id)
    .where(Usage.app_id == bindparam("app_id"))
    .with_for_update()
)
# The last statement of every write that changes what an app stores: the
# bytes it adds (charged only within the quota — ONE conditional statement)
# or gives back, and the object ids it took.
_GIVE_BACK = (
    update(Usage)
    .where(Usage.app_id == bindparam("app"))
    .values(
        used_bytes=Usage.used_bytes + bindparam("delta", type_=BigInteger),
        last_object_id=bindparam("last_object", type_=BigInteger),
    )
    .returning(Usage.used_bytes)
)
_CHARGE = _GIVE_BACK.where(
    Usage.used_bytes + bindparam("delta", type_=BigInteger) <= bindparam("quota", type_=BigInteger)
)
_PREFERENCE = select(Pref.value).where(
    Pref.app_id == bindparam("app_id"),
    Pref.user_id == bindparam("user_id"),
    Pref.pref_id == bindparam("pref_id"),
)
_PREFERENCES = (
    select(Pref.pref_id, Pref.value)
    .where(Pref.app_id == bindparam("app_id"), Pref.user_id == bindparam("user_id"))
    .order_by(Pref.pref_id)
)
_TYPE = select(Type.id, Type.bytes).where(
    Type.app_id == bindparam("app_id"), Type.name == bindparam("name")
)
_TYPE_NAMES = select(Type.name).where(Type.app_id == bindparam("app_id")).order_by(Type.name)
_TYPE_PROPERTIES = (
    select(Type.id, Prop.id.label("prop_id"), Prop.name, Prop.prop_type, Prop.bytes)
    .select_from(Type)
    .outerjoin(Prop, Prop.type_id == Type.id)
    .where(Type.app_id == bindparam("app_id"), Type.name == bindparam("name"))
    .order_by(Prop.id)
)
_OBJECTS = (
    select(
        Obj.obj_id,
        Obj.id,
        Obj.type_id,
        Prop.name,
        Prop.prop_type,
        ObjValue.int_value,
        ObjValue.text_value,
    )
    .select_from(Obj)
    .outerjoin(Prop, Prop.type_id == Obj.type_id)
    .outerjoin(ObjValue, and_(ObjValue.object_id == Obj.id, ObjValue.property_id == Prop.id))
    .where(Obj.app_id == bindparam("app_id"), Obj.obj_id.in_(bindparam("obj_ids", expanding=True)))
    .order_by(Obj.obj_id, Prop.id)
)
# The type and one property of it (None columns: no such property).
_TYPE_PROPERTY = (
    select(Type.id, Prop.id.label("prop_id"), Prop.prop_type, Prop.bytes)
    .select_from(Type)
    .outerjoin(Prop, and_(Prop.type_id == Type.id, Prop.name == bindparam("prop")))
    .where(Type.app_id == bindparam("app_id"), Type.name == bindparam("type"))
)


def _hash_lookup(*columns: Any) -> Select[Any]:
    """``columns`` of one hash value: its type (by app and name), the property
    (by name) and the value of the key — None columns where there is none."""
    return (
        select(*columns)
        .select_from(Type)
        .outerjoin(Prop, and_(Prop.type_id == Type.id, Prop.name == bindparam("prop")))
        .outerjoin(
            Hash,
            and_(
                Hash.type_id == Type.id,
                Hash.hash_key == bindparam("key"),
                Hash.property_id == Prop.id,
            ),
        )
        .where(Type.app_id == bindparam("app_id"), Type.name == bindparam("type"))
    )


_HASH_VALUE = _hash_lookup(Prop.id, Prop.prop_type, Hash.int_value, Hash.text_value)
# Where a hash value goes: the type, the property and the bytes of the value
# there now (None columns: no such property, no value yet).
_HASH_SLOT = _hash_lookup(Type.id, Prop.id.label("prop_id"), Prop.prop_type, Hash.bytes)
_TYPE_ID = (
    select(Type.id)
    .where(Type.app_id == bindparam("app_id"), Type.name == bindparam("type"))
    .scalar_subquery()
)
_INTEGER_PROPERTY_ID = (
    select(Prop.id)
    .where(
        Prop.type_id == _TYPE_ID,
        Prop.name == bindparam("prop"),
        Prop.prop_type == int(PropType.INTEGER),
    )
    .scalar_subquery()
)
# The one statement of an increment of an existing value. ``low``/``high``
# bound the old value so that the new one stays a 64-bit integer.
_INCREMENT = (
    update(Hash)
    .where(
        Hash.type_id == _TYPE_ID,
        Hash.hash_key == bindparam("key"),
        Hash.property_id == _INTEGER_PROPERTY_ID,
        Hash.int_value.between(bindparam("low"), bindparam("high")),
    )
    .values(
        int_value=Hash.int_value + bindparam("increment", type_=BigInteger),
        writes=Hash.writes + 1,
    )
    .returning(Hash.int_value)
)
_DEFINITIONS = (
    select(
        Def.id,
        Def.name,
        Def.assoc_type,
        Def.assoc_info1,
        Def.assoc_info2,
        Def.inverse_id,
        InverseDef.name.label("inverse"),
        Def.bytes,
    )
    .select_from(Def)
    .outerjoin(InverseDef, InverseDef.id == Def.inverse_id)
    .where(Def.app_id == bindparam("app_id"))
)
_ALL_DEFINITIONS = _DEFINITIONS.order_by(Def.name)
_NAMED_DEFINITIONS = _DEFINITIONS.where(Def.name.in_(bindparam("names", expanding=True)))
_ASSOCIATED = (
    select(Def.id, Assoc.id2, Assoc.data, Assoc.assoc_time)
    .select_from(Def)
    .outerjoin(Assoc, and_(Assoc.definition_id == Def.id, Assoc.id1 == bindparam("id1")))
    .where(Def.app_id == bindparam("app_id"), Def.name == bindparam("name"))
    .order_by(Assoc.assoc_time.desc(), Assoc.id2)
)
_ASSOCIATED_COUNTS = (
    select(Def.id, Assoc.id1, func.count(Assoc.id2))
    .select_from(Def)
    .outerjoin(
        Assoc,
        and_(Assoc.definition_id == Def.id, Assoc.id1.in_(bindparam("ids", expanding=True))),
    )
    .where(Def.app_id == bindparam("app_id"), Def.name == bindparam("name"))
    .group_by(Def.id, Assoc.id1)
)
_ASSOCIATIONS_BETWEEN = (
    select(Def.name, Assoc.data, Assoc.assoc_time)
    .select_from(Assoc)
    .join(Def, Def.id == Assoc.definition_id)
    .where(
        Def.app_id == bindparam("app_id"),
        Assoc.id1 == bindparam("id1"),
        Assoc.id2 == bindparam("id2"),
    )
    .order_by(Def.name)
)


@dataclass
class _Attempt:
    committing: bool = False


async def _with_retries(work: Callable[[_Attempt], Awaitable[T]], what: str) -> T:
    """``work`` (one transaction), again after an outage or a conflicting
    writer, at most :data:`ATTEMPTS` times within :data:`RETRY_BUDGET_S`;
    never once its COMMIT was under way."""
    started = time.monotonic()
    attempt = 1
    while True:
        state = _Attempt()
        try:
            return await work(state)
        except (DatabaseUnavailable, IntegrityError) as exc:
            spent = time.monotonic() - started
            if state.committing or attempt >= ATTEMPTS or spent >= RETRY_BUDGET_S:
                raise
            log.info("data store %s: attempt %d failed (%s); retrying", what, attempt, exc)
        await asyncio.sleep(_BACKOFF_S[attempt - 1] * random.uniform(0.5, 1.5))
        attempt += 1


def _not_run(exc: DatabaseUnavailable) -> bool:
    """Whether the database refused the statement before running it."""
    sqlstate = getattr(getattr(exc.__cause__, "orig", None), "sqlstate", None)
    return isinstance(sqlstate, str) and (sqlstate in _NOT_RUN_SQLSTATES or sqlstate[:2] == "53")


@dataclass
class _Write:
    """One write transaction of one app: its connection, and the bytes and object
    ids it takes, settled on the app's usage row at the end."""

    conn: AsyncConnection
    tenant: Tenant
    used_bytes: int
    last_object_id: int
    delta: int = 0
    allocated: int = 0

    def charge(self, nbytes: int) -> None:
        self.delta += nbytes

    def give_back(self, nbytes: int) -> None:
        self.delta -= nbytes

    def next_object_id(self) -> int:
        self.allocated += 1
        return self.last_object_id + self.allocated

    async def freed(self, statement: ReturningDelete[Any]) -> list[Any]:
        """Run a ``DELETE … RETURNING bytes, …``; its bytes are given back."""
        rows = list((await self.conn.execute(statement)).all())
        self.give_back(sum(row[0] for row in rows))
        return rows


@dataclass(frozen=True, slots=True)
class _Definition:
    id: int
    name: str
    assoc_type: AssocType
    info1: AssocInfo
    info2: AssocInfo
    inverse_id: int | None
    inverse: str | None
    bytes: int

    def public(self) -> AssociationDefinition:
        return AssociationDefinition(
            self.name, self.assoc_type, self.info1, self.info2, self.inverse
        )


def _info_json(info: AssocInfo) -> str:
    return orjson.dumps(
        {"alias": info.alias, "object_type": info.object_type, "unique": info.unique},
        option=orjson.OPT_SORT_KEYS,
    ).decode()


def _info(stored: str) -> AssocInfo:
    data = orjson.loads(stored)
    return AssocInfo(str(data["alias"]), str(data["object_type"]), bool(data["unique"]))


def _definition(row: Any) -> _Definition:
    return _Definition(
        id=row.id,
        name=row.name,
        assoc_type=AssocType(row.assoc_type),
        info1=_info(row.assoc_info1),
        info2=_info(row.assoc_info2),
        inverse_id=row.inverse_id,
        inverse=row.inverse,
        bytes=row.bytes,
    )


def _stored(prop_type: int, int_value: int | None, text_value: str | None) -> Value | None:
    return int_value if prop_type == PropType.INTEGER else text_value


def _value_columns(prop_type: PropType, value: Value) -> dict[str, object]:
    """``int_value``/``text_value`` and the bytes the value costs (beyond its row)."""
    if prop_type is PropType.INTEGER:
        return {"int_value": value, "text_value": None}
    assert isinstance(value, str)
    return {"int_value": None, "text_value": value}


def _extra_bytes(value: Value) -> int:
    return text_bytes(value) if isinstance(value, str) else 0


def _check_key(key: str) -> str:
    if not key or len(key) > HASH_KEY_MAX_CHARS:
        raise InvalidValue(f"key: 1 to {HASH_KEY_MAX_CHARS} characters")
    return check_text("key", key)


def _increment_bounds(increment: int) -> dict[str, int]:
    """The old values ``increment`` can be added to without leaving 64 bits."""
    return {"low": INT64_MIN - min(increment, 0), "high": INT64_MAX - max(increment, 0)}


@dataclass(frozen=True, slots=True)
class _Property:
    id: int
    prop_type: PropType
    bytes: int


class SqlDataStore:
    """:class:`~openplatform.storage.data_store.DataStore` on the platform's
    database (see the module docstring for how writes, counters and failures
    are handled)."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._insert = sqlite_insert if sessions.is_sqlite else pg_insert
        # setHashValue's upsert, built once and run with each call's values:
        # building it per call (``.values()``, ``.excluded``) cost ~0.75 ms of
        # CPU, most of the call.
        upsert = self._insert(Hash)
        self._set_hash = upsert.on_conflict_do_update(
            index_elements=[Hash.type_id, Hash.hash_key, Hash.property_id],
            set_={
                "int_value": upsert.excluded.int_value,
                "text_value": upsert.excluded.text_value,
                "bytes": upsert.excluded.bytes,
                "writes": Hash.writes + 1,
            },
        )

    # --- the machinery -------------------------------------------------------

    async def _read(self, statement: Any, parameters: Mapping[str, object]) -> list[Any]:
        """Every row of one SELECT (reads are always safe to retry)."""

        async def attempt(state: _Attempt) -> list[Any]:
            return list(await self._sessions.all(statement, parameters))

        return await _with_retries(attempt, "read")

    async def _write(self, tenant: Tenant, work: Callable[[_Write], Awaitable[T]]) -> T:
        """``work`` in one transaction that locks the app's usage row first and
        settles it last (see the module docstring), with retries."""

        async def attempt(state: _Attempt) -> T:
            async with self._sessions.write() as session:
                # Core statements on the session's connection: no ORM work per
                # statement (the data store maps no objects).
                txn = await self._begin(await session.connection(), tenant)
                result = await work(txn)
                await self._settle(txn)
                state.committing = True
            return result

        return await _with_retries(attempt, "write")

    async def _begin(self, conn: AsyncConnection, tenant: Tenant) -> _Write:
        params = {"app_id": tenant.app_id}
        row = (await conn.execute(_LOCK_USAGE, params)).first()
        if row is None:
            created = self._insert(Usage).values(
                app_id=tenant.app_id, used_bytes=0, last_object_id=0
            )
            await conn.execute(created.on_conflict_do_nothing(index_elements=[Usage.app_id]))
            row = (await conn.execute(_LOCK_USAGE, params)).one()
        return _Write(conn, tenant, used_bytes=row[0], last_object_id=row[1])

    async def _settle(self, txn: _Write) -> None:
        """Charge (or give back) the bytes, record the object ids taken; a
        charge the quota does not cover refuses the whole write."""
        if txn.delta == 0 and txn.allocated == 0:
            return
        params = {
            "app": txn.tenant.app_id,
            "delta": txn.delta,
            "quota": txn.tenant.quota_bytes,
            "last_object": txn.last_object_id + txn.allocated,
        }
        statement = _CHARGE if txn.delta > 0 else _GIVE_BACK
        if (await txn.conn.execute(statement, params)).first() is None:
            raise QuotaExceeded(
                f"the app uses {txn.used_bytes} of its {txn.tenant.quota_bytes} bytes; "
                f"this write needs {txn.delta} more"
            )

    # --- preferences ---------------------------------------------------------

    async def get_preference(self, app_id: int, user_id: int, pref_id: int) -> str:
        rows = await self._read(
            _PREFERENCE, {"app_id": app_id, "user_id": user_id, "pref_id": pref_id}
        )
        return str(rows[0].value) if rows else ""

    async def get_preferences(self, app_id: int, user_id: int) -> list[Preference]:
        rows = await self._read(_PREFERENCES, {"app_id": app_id, "user_id": user_id})
        return [Preference(row.pref_id, row.value) for row in rows]

    async def set_preferences(
        self, tenant: Tenant, user_id: int, values: Mapping[int, str], *, replace: bool
    ) -> None:
        for pref_id, value in values.items():
            if not 0 <= pref_id <= MAX_PREF_ID:
                raise InvalidValue(f"pref_id: must be between 0 and {MAX_PREF_ID}")
            if len(value) > PREF_VALUE_MAX_CHARS:
                raise InvalidValue(f"value of {pref_id}: at most {PREF_VALUE_MAX_CHARS} characters")
            check_text(f"value of {pref_id}", value)
        kept = [
            {
                "app_id": tenant.app_id,
                "user_id": user_id,
                "pref_id": pref_id,
                "value": value,
                "bytes": ROW_BYTES + text_bytes(value),
            }
            for pref_id, value in sorted(values.items())
            if value not in ("", "0")
        ]
        kept_bytes = sum(
            ROW_BYTES + text_bytes(value) for value in values.values() if value not in ("", "0")
        )

        async def work(txn: _Write) -> None:
            old = delete(Pref).where(Pref.app_id == tenant.app_id, Pref.user_id == user_id)
            if not replace:
                old = old.where(Pref.pref_id.in_(list(values)))
            if replace or values:
                await txn.freed(old.returning(Pref.bytes))
            if kept:
                await txn.conn.execute(insert(Pref), kept)
                txn.charge(kept_bytes)

        await self._write(tenant, work)

    # --- object types and properties -----------------------------------------

    async def _type(self, conn: AsyncConnection, app_id: int, name: str) -> tuple[int, int]:
        """The id and bytes of a type; NotFoundError when there is none."""
        row = (await conn.execute(_TYPE, {"app_id": app_id, "name": name})).first()
        if row is None:
            raise NotFoundError(f"no object type {name!r}")
        return row[0], row[1]

    async def _property(
        self, conn: AsyncConnection, app_id: int, type_name: str, prop_name: str
    ) -> tuple[int, _Property]:
        """The type's id and one of its properties (803 / 801 when missing)."""
        params = {"app_id": app_id, "type": type_name, "prop": prop_name}
        row = (await conn.execute(_TYPE_PROPERTY, params)).first()
        if row is None:
            raise NotFoundError(f"no object type {type_name!r}")
        if row.prop_id is None:
            raise InvalidOperation(f"property {prop_name!r} is not defined on {type_name!r}")
        return row.id, _Property(row.prop_id, PropType(row.prop_type), row.bytes)

    async def _properties(self, conn: AsyncConnection, type_id: int) -> dict[str, _Property]:
        statement = select(Prop.id, Prop.name, Prop.prop_type, Prop.bytes).where(
            Prop.type_id == type_id
        )
        return {
            row.name: _Property(row.id, PropType(row.prop_type), row.bytes)
            for row in await conn.execute(statement)
        }

    async def create_type(self, tenant: Tenant, name: str) -> None:
        async def work(txn: _Write) -> None:
            params = {"app_id": tenant.app_id, "name": name}
            if (await txn.conn.execute(_TYPE, params)).first() is not None:
                raise DuplicateError("name", f"object type {name!r} already exists")
            nbytes = ROW_BYTES + text_bytes(name)
            await txn.conn.execute(
                insert(Type).values(app_id=tenant.app_id, name=name, bytes=nbytes)
            )
            txn.charge(nbytes)

        await self._write(tenant, work)

    async def drop_type(self, tenant: Tenant, name: str) -> None:
        async def work(txn: _Write) -> None:
            type_id, type_bytes = await self._type(txn.conn, tenant.app_id, name)
            objects = select(Obj.id).where(Obj.type_id == type_id)
            parts = (
                select(func.sum(Prop.bytes)).where(Prop.type_id == type_id),
                select(func.sum(Obj.bytes)).where(Obj.type_id == type_id),
                select(func.sum(ObjValue.bytes)).where(ObjValue.object_id.in_(objects)),
                select(func.sum(Hash.bytes)).where(Hash.type_id == type_id),
            )
            txn.give_back(type_bytes)
            for part in parts:
                txn.give_back(int((await txn.conn.execute(part)).scalar() or 0))
            # The type's properties, objects, values and hash values cascade.
            await txn.conn.execute(delete(Type).where(Type.id == type_id))

        await self._write(tenant, work)

    async def rename_type(self, tenant: Tenant, name: str, new_name: str) -> None:
        async def work(txn: _Write) -> None:
            type_id, type_bytes = await self._type(txn.conn, tenant.app_id, name)
            params = {"app_id": tenant.app_id, "name": new_name}
            if (await txn.conn.execute(_TYPE, params)).first() is not None:
                raise DuplicateError("new_name", f"object type {new_name!r} already exists")
            nbytes = ROW_BYTES + text_bytes(new_name)
            await txn.conn.execute(
                update(Type).where(Type.id == type_id).values(name=new_name, bytes=nbytes)
            )
            txn.charge(nbytes - type_bytes)

        await self._write(tenant, work)

    async def get_types(self, app_id: int) -> list[str]:
        return [row.name for row in await self._read(_TYPE_NAMES, {"app_id": app_id})]

    async def get_type(self, app_id: int, name: str) -> list[PropertyDefinition]:
        rows = await self._read(_TYPE_PROPERTIES, {"app_id": app_id, "name": name})
        if not rows:
            raise NotFoundError(f"no object type {name!r}")
        return [
            PropertyDefinition(row.name, PropType(row.prop_type))
            for row in rows
            if row.prop_id is not None
        ]

    async def define_property(
        self, tenant: Tenant, type_name: str, prop_name: str, prop_type: PropType
    ) -> None:
        async def work(txn: _Write) -> None:
            type_id, _ = await self._type(txn.conn, tenant.app_id, type_name)
            if prop_name in await self._properties(txn.conn, type_id):
                raise DuplicateError(
                    "prop_name", f"property {prop_name!r} of {type_name!r} already exists"
                )
            nbytes = ROW_BYTES + text_bytes(prop_name)
            await txn.conn.execute(
                insert(Prop).values(
                    type_id=type_id, name=prop_name, prop_type=int(prop_type), bytes=nbytes
                )
            )
            txn.charge(nbytes)

        await self._write(tenant, work)

    async def undefine_property(self, tenant: Tenant, type_name: str, prop_name: str) -> None:
        async def work(txn: _Write) -> None:
            _, prop = await self._property(txn.conn, tenant.app_id, type_name, prop_name)
            txn.give_back(prop.bytes)
            for table in (ObjValue, Hash):
                part = select(func.sum(table.bytes)).where(table.property_id == prop.id)
                txn.give_back(int((await txn.conn.execute(part)).scalar() or 0))
            # Its values (of objects and of hash keys) cascade.
            await txn.conn.execute(delete(Prop).where(Prop.id == prop.id))

        await self._write(tenant, work)

    async def rename_property(
        self, tenant: Tenant, type_name: str, prop_name: str, new_name: str
    ) -> None:
        async def work(txn: _Write) -> None:
            type_id, prop = await self._property(txn.conn, tenant.app_id, type_name, prop_name)
            if new_name in await self._properties(txn.conn, type_id):
                raise DuplicateError(
                    "new_name", f"property {new_name!r} of {type_name!r} already exists"
                )
            nbytes = ROW_BYTES + text_bytes(new_name)
            await txn.conn.execute(
                update(Prop).where(Prop.id == prop.id).values(name=new_name, bytes=nbytes)
            )
            txn.charge(nbytes - prop.bytes)

        await self._write(tenant, work)

    # --- objects -------------------------------------------------------------

    @staticmethod
    def _checked_values(
        type_name: str, defined: Mapping[str, _Property], properties: Mapping[str, object]
    ) -> list[tuple[_Property, Value]]:
        checked = []
        for name, raw in properties.items():
            prop = defined.get(name)
            if prop is None:
                raise InvalidOperation(f"property {name!r} is not defined on {type_name!r}")
            checked.append((prop, check_value(f"properties.{name}", prop.prop_type, raw)))
        return checked

    @staticmethod
    async def _insert_values(
        txn: _Write, object_pk: int, values: Sequence[tuple[_Property, Value]]
    ) -> None:
        if not values:
            return
        rows = [
            {
                "object_id": object_pk,
                "property_id": prop.id,
                **_value_columns(prop.prop_type, value),
                "bytes": ROW_BYTES + _extra_bytes(value),
            }
            for prop, value in values
        ]
        await txn.conn.execute(insert(ObjValue), rows)
        txn.charge(sum(ROW_BYTES + _extra_bytes(value) for _, value in values))

    async def create_object(
        self, tenant: Tenant, type_name: str, properties: Mapping[str, object]
    ) -> int:
        async def work(txn: _Write) -> int:
            type_id, _ = await self._type(txn.conn, tenant.app_id, type_name)
            defined = await self._properties(txn.conn, type_id)
            values = self._checked_values(type_name, defined, properties)
            obj_id = txn.next_object_id()
            created = insert(Obj).values(
                app_id=tenant.app_id, obj_id=obj_id, type_id=type_id, bytes=ROW_BYTES
            )
            object_pk = (await txn.conn.execute(created.returning(Obj.id))).scalar_one()
            txn.charge(ROW_BYTES)
            await self._insert_values(txn, object_pk, values)
            return obj_id

        return await self._write(tenant, work)

    async def update_object(
        self, tenant: Tenant, obj_id: int, properties: Mapping[str, object], *, replace: bool
    ) -> None:
        async def work(txn: _Write) -> None:
            found = select(Obj.id, Obj.type_id, Type.name).join(Type, Type.id == Obj.type_id)
            found = found.where(Obj.app_id == tenant.app_id, Obj.obj_id == obj_id)
            row = (await txn.conn.execute(found)).first()
            if row is None:
                raise NotFoundError(f"no object {obj_id}")
            defined = await self._properties(txn.conn, row.type_id)
            values = self._checked_values(row.name, defined, properties)
            old = delete(ObjValue).where(ObjValue.object_id == row.id)
            if not replace:
                old = old.where(ObjValue.property_id.in_([prop.id for prop, _ in values]))
            if replace or values:
                await txn.freed(old.returning(ObjValue.bytes))
            await self._insert_values(txn, row.id, values)

        await self._write(tenant, work)

    async def delete_objects(self, tenant: Tenant, obj_ids: Sequence[int]) -> None:
        wanted = list(dict.fromkeys(obj_ids))

        async def work(txn: _Write) -> None:
            found = select(Obj.id, Obj.obj_id, Obj.bytes).where(
                Obj.app_id == tenant.app_id, Obj.obj_id.in_(wanted)
            )
            rows = (await txn.conn.execute(found)).all()
            missing = set(wanted) - {row.obj_id for row in rows}
            if missing:
                raise NotFoundError(f"no object {min(missing)}")
            pks = [row.id for row in rows]
            values = select(func.sum(ObjValue.bytes)).where(ObjValue.object_id.in_(pks))
            txn.give_back(int((await txn.conn.execute(values)).scalar() or 0))
            txn.give_back(sum(row.bytes for row in rows))
            # Their values cascade.
            await txn.conn.execute(delete(Obj).where(Obj.id.in_(pks)))

        if wanted:
            await self._write(tenant, work)

    async def get_objects(
        self, app_id: int, obj_ids: Sequence[int], prop_names: Sequence[str] | None
    ) -> list[StoredObject]:
        wanted = list(dict.fromkeys(obj_ids))
        rows = await self._read(_OBJECTS, {"app_id": app_id, "obj_ids": wanted})
        found: dict[int, dict[str, Value | None]] = {}
        for row in rows:
            values = found.setdefault(row.obj_id, {})
            if row.name is not None:
                values[row.name] = _stored(row.prop_type, row.int_value, row.text_value)
        objects = []
        for obj_id in obj_ids:
            if obj_id not in found:
                raise NotFoundError(f"no object {obj_id}")
            values = found[obj_id]
            if prop_names is not None:
                undefined = [name for name in prop_names if name not in values]
                if undefined:
                    raise InvalidOperation(
                        f"property {undefined[0]!r} is not defined on the type of object {obj_id}"
                    )
                values = {name: values[name] for name in prop_names}
            objects.append(StoredObject(obj_id, values))
        return objects

    # --- hash keys -----------------------------------------------------------

    async def get_hash_value(
        self, app_id: int, type_name: str, key: str, prop_name: str
    ) -> Value | None:
        _check_key(key)
        params = {"app_id": app_id, "type": type_name, "key": key, "prop": prop_name}
        rows = await self._read(_HASH_VALUE, params)
        if not rows:
            raise NotFoundError(f"no object type {type_name!r}")
        row = rows[0]
        if row.id is None:
            raise InvalidOperation(f"property {prop_name!r} is not defined on {type_name!r}")
        return _stored(row.prop_type, row.int_value, row.text_value)

    async def set_hash_value(
        self, tenant: Tenant, type_name: str, key: str, prop_name: str, value: object
    ) -> None:
        _check_key(key)

        async def work(txn: _Write) -> None:
            params = {"app_id": tenant.app_id, "type": type_name, "prop": prop_name, "key": key}
            row = (await txn.conn.execute(_HASH_SLOT, params)).first()
            if row is None:
                raise NotFoundError(f"no object type {type_name!r}")
            if row.prop_id is None:
                raise InvalidOperation(f"property {prop_name!r} is not defined on {type_name!r}")
            prop_type = PropType(row.prop_type)
            checked = check_value("value", prop_type, value)
            nbytes = ROW_BYTES + text_bytes(key) + _extra_bytes(checked)
            values = {
                "type_id": row.id,
                "hash_key": key,
                "property_id": row.prop_id,
                **_value_columns(prop_type, checked),
                "bytes": nbytes,
                "writes": 1,
            }
            await txn.conn.execute(self._set_hash, values)
            # The old size is stable: this transaction holds the app's lock.
            txn.charge(nbytes - (row.bytes or 0))

        await self._write(tenant, work)

    async def increment_hash_value(
        self, tenant: Tenant, type_name: str, key: str, prop_name: str, increment: int
    ) -> int:
        """Two ways, each ONE statement on the value: an existing value is
        incremented by :data:`_INCREMENT` on its own (autocommit); the first
        increment inserts it under the app's lock with ``INSERT … ON CONFLICT
        DO UPDATE … RETURNING int_value, writes`` — ``writes`` is 1 exactly when
        this statement inserted the row, which is then charged. Either way the
        database adds; no value is read first."""
        _check_key(key)
        if not INT64_MIN <= increment <= INT64_MAX:
            raise InvalidValue("increment: must be a 64-bit integer")
        bounds = _increment_bounds(increment)
        params = {
            "app_id": tenant.app_id,
            "type": type_name,
            "key": key,
            "prop": prop_name,
            "increment": increment,
            **bounds,
        }

        async def existing(state: _Attempt) -> Any:
            try:
                return await self._sessions.write_one(_INCREMENT, params)
            except DatabaseUnavailable as exc:
                state.committing = not _not_run(exc)
                raise

        row = await _with_retries(existing, "increment")
        if row is not None:
            return int(row[0])

        async def work(txn: _Write) -> int:
            type_id, prop = await self._property(txn.conn, tenant.app_id, type_name, prop_name)
            if prop.prop_type is not PropType.INTEGER:
                raise InvalidOperation(f"property {prop_name!r} of {type_name!r} is not an integer")
            nbytes = ROW_BYTES + text_bytes(key)
            statement = self._insert(Hash).values(
                type_id=type_id,
                hash_key=key,
                property_id=prop.id,
                int_value=increment,
                text_value=None,
                bytes=nbytes,
                writes=1,
            )
            statement = statement.on_conflict_do_update(
                index_elements=[Hash.type_id, Hash.hash_key, Hash.property_id],
                set_={
                    "int_value": Hash.int_value + statement.excluded.int_value,
                    "writes": Hash.writes + 1,
                },
                where=Hash.int_value.between(bounds["low"], bounds["high"]),
            )
            added = (
                await txn.conn.execute(statement.returning(Hash.int_value, Hash.writes))
            ).first()
            if added is None:
                raise InvalidOperation(f"{prop_name!r} of {key!r} would leave 64 bits")
            if added.writes == 1:
                txn.charge(nbytes)
            return int(added.int_value)

        return await self._write(tenant, work)

    async def remove_hash_keys(self, tenant: Tenant, type_name: str, keys: Sequence[str]) -> None:
        for key in keys:
            _check_key(key)

        async def work(txn: _Write) -> None:
            type_id, _ = await self._type(txn.conn, tenant.app_id, type_name)
            if keys:
                await txn.freed(
                    delete(Hash)
                    .where(Hash.type_id == type_id, Hash.hash_key.in_(list(keys)))
                    .returning(Hash.bytes)
                )

        await self._write(tenant, work)

    # --- associations --------------------------------------------------------

    async def _definitions(
        self, conn: AsyncConnection, app_id: int, names: Iterable[str]
    ) -> dict[str, _Definition]:
        """The definitions named; NotFoundError for the first one missing."""
        wanted = list(dict.fromkeys(names))
        rows = await conn.execute(_NAMED_DEFINITIONS, {"app_id": app_id, "names": wanted})
        found = {row.name: _definition(row) for row in rows}
        for name in wanted:
            if name not in found:
                raise NotFoundError(f"no association {name!r}")
        return found

    async def _with_inverses(
        self, conn: AsyncConnection, app_id: int, names: Iterable[str]
    ) -> dict[str, _Definition]:
        """The definitions named and the inverses of the asymmetric ones."""
        found = await self._definitions(conn, app_id, names)
        inverses = [d.inverse for d in found.values() if d.inverse and d.inverse not in found]
        if inverses:
            found.update(await self._definitions(conn, app_id, inverses))
        return found

    async def define_association(
        self,
        tenant: Tenant,
        name: str,
        assoc_type: AssocType,
        info1: AssocInfo,
        info2: AssocInfo,
        inverse: str | None,
    ) -> None:
        if assoc_type is AssocType.ASYMMETRIC:
            if inverse is None:
                raise InvalidValue("inverse: required for assoc_type 3")
            if inverse == name:
                raise InvalidValue("inverse: must differ from name")
        elif inverse is not None:
            raise InvalidValue("inverse: only for assoc_type 3")
        for info in (info1, info2):
            check_text("assoc_info", info.alias)
            check_text("assoc_info", info.object_type)
        sides = [(name, info1, info2)] + ([(inverse, info2, info1)] if inverse else [])

        async def work(txn: _Write) -> None:
            names = [side[0] for side in sides]
            taken = select(Def.name).where(Def.app_id == tenant.app_id, Def.name.in_(names))
            used = (await txn.conn.execute(taken)).scalars().first()
            if used is not None:
                raise DuplicateError("name", f"association {used!r} already exists")
            ids: list[int] = []
            for side_name, first, second in sides:
                info_json = (_info_json(first), _info_json(second))
                nbytes = ROW_BYTES + text_bytes(side_name) + sum(map(text_bytes, info_json))
                created = insert(Def).values(
                    app_id=tenant.app_id,
                    name=side_name,
                    assoc_type=int(assoc_type),
                    assoc_info1=info_json[0],
                    assoc_info2=info_json[1],
                    inverse_id=ids[0] if ids else None,
                    bytes=nbytes,
                )
                ids.append((await txn.conn.execute(created.returning(Def.id))).scalar_one())
                txn.charge(nbytes)
            if len(ids) == 2:
                await txn.conn.execute(
                    update(Def).where(Def.id == ids[0]).values(inverse_id=ids[1])
                )

        await self._write(tenant, work)

    async def undefine_association(self, tenant: Tenant, name: str) -> None:
        async def work(txn: _Write) -> None:
            found = await self._with_inverses(txn.conn, tenant.app_id, [name])
            ids = [definition.id for definition in found.values()]
            txn.give_back(sum(definition.bytes for definition in found.values()))
            stored = select(func.sum(Assoc.bytes)).where(Assoc.definition_id.in_(ids))
            txn.give_back(int((await txn.conn.execute(stored)).scalar() or 0))
            # Their associations cascade.
            await txn.conn.execute(delete(Def).where(Def.id.in_(ids)))

        await self._write(tenant, work)

    async def rename_association(self, tenant: Tenant, name: str, new_name: str) -> None:
        async def work(txn: _Write) -> None:
            definition = (await self._definitions(txn.conn, tenant.app_id, [name]))[name]
            taken = select(Def.id).where(Def.app_id == tenant.app_id, Def.name == new_name)
            if (await txn.conn.execute(taken)).first() is not None:
                raise DuplicateError("new_name", f"association {new_name!r} already exists")
            delta = text_bytes(new_name) - text_bytes(name)
            await txn.conn.execute(
                update(Def)
                .where(Def.id == definition.id)
                .values(name=new_name, bytes=definition.bytes + delta)
            )
            txn.charge(delta)

        await self._write(tenant, work)

    async def get_association_definitions(
        self, app_id: int, names: Sequence[str] | None
    ) -> list[AssociationDefinition]:
        if names is None:
            rows = await self._read(_ALL_DEFINITIONS, {"app_id": app_id})
            return [_definition(row).public() for row in rows]
        rows = await self._read(_NAMED_DEFINITIONS, {"app_id": app_id, "names": list(names)})
        found = {row.name: _definition(row).public() for row in rows}
        for name in names:
            if name not in found:
                raise NotFoundError(f"no association {name!r}")
        return [found[name] for name in names]

    @staticmethod
    def _directions(
        definition: _Definition, found: Mapping[str, _Definition], id1: int, id2: int
    ) -> list[tuple[_Definition, int, int]]:
        """The rows of an association: itself, and its reverse (two-way kinds)."""
        rows = [(definition, id1, id2)]
        if definition.assoc_type is AssocType.SYMMETRIC and id1 != id2:
            rows.append((definition, id2, id1))
        elif definition.assoc_type is AssocType.ASYMMETRIC and definition.inverse:
            rows.append((found[definition.inverse], id2, id1))
        return rows

    @staticmethod
    async def _check_unique(txn: _Write, definition: _Definition, id1: int, id2: int) -> None:
        """804 when a ``unique`` side already takes part in another association."""
        sides = (
            (definition.info1.unique, Assoc.id1 == id1, Assoc.id2 != id2, id1),
            (definition.info2.unique, Assoc.id2 == id2, Assoc.id1 != id1, id2),
        )
        for unique, same, other, taken_id in sides:
            if not unique:
                continue
            query = select(Assoc.id1).where(Assoc.definition_id == definition.id, same, other)
            if (await txn.conn.execute(query.limit(1))).first() is not None:
                raise DuplicateError(
                    "obj_id", f"{taken_id} already has a {definition.name!r} association"
                )

    async def set_associations(self, tenant: Tenant, items: Sequence[NewAssociation]) -> None:
        for item in items:
            if len(item.data) > ASSOC_DATA_MAX_CHARS:
                raise InvalidValue(f"data: at most {ASSOC_DATA_MAX_CHARS} characters")
            check_text("data", item.data)

        async def work(txn: _Write) -> None:
            found = await self._with_inverses(
                txn.conn, tenant.app_id, (item.name for item in items)
            )
            for item in items:
                rows = self._directions(found[item.name], found, item.id1, item.id2)
                for definition, id1, id2 in rows:
                    await self._check_unique(txn, definition, id1, id2)
                    await txn.freed(
                        delete(Assoc)
                        .where(
                            Assoc.definition_id == definition.id,
                            Assoc.id1 == id1,
                            Assoc.id2 == id2,
                        )
                        .returning(Assoc.bytes)
                    )
                    nbytes = ROW_BYTES + text_bytes(item.data)
                    await txn.conn.execute(
                        insert(Assoc).values(
                            definition_id=definition.id,
                            id1=id1,
                            id2=id2,
                            data=item.data,
                            assoc_time=item.time,
                            bytes=nbytes,
                        )
                    )
                    txn.charge(nbytes)

        if items:
            await self._write(tenant, work)

    async def remove_associations(self, tenant: Tenant, keys: Sequence[AssociationKey]) -> None:
        async def work(txn: _Write) -> None:
            found = await self._with_inverses(txn.conn, tenant.app_id, (k.name for k in keys))
            for key in keys:
                for definition, id1, id2 in self._directions(
                    found[key.name], found, key.id1, key.id2
                ):
                    await txn.freed(
                        delete(Assoc)
                        .where(
                            Assoc.definition_id == definition.id,
                            Assoc.id1 == id1,
                            Assoc.id2 == id2,
                        )
                        .returning(Assoc.bytes)
                    )

        if keys:
            await self._write(tenant, work)

    async def remove_associated_objects(self, tenant: Tenant, name: str, id1: int) -> None:
        async def work(txn: _Write) -> None:
            found = await self._with_inverses(txn.conn, tenant.app_id, [name])
            definition = found[name]
            await txn.freed(
                delete(Assoc)
                .where(Assoc.definition_id == definition.id, Assoc.id1 == id1)
                .returning(Assoc.bytes)
            )
            # Every reverse row of these points back at id1 (they are written
            # and removed in pairs).
            reverse = None
            if definition.assoc_type is AssocType.SYMMETRIC:
                reverse = definition
            elif definition.assoc_type is AssocType.ASYMMETRIC and definition.inverse:
                reverse = found[definition.inverse]
            if reverse is not None:
                await txn.freed(
                    delete(Assoc)
                    .where(Assoc.definition_id == reverse.id, Assoc.id2 == id1)
                    .returning(Assoc.bytes)
                )

        await self._write(tenant, work)

    async def get_associated_objects(self, app_id: int, name: str, id1: int) -> list[Association]:
        rows = await self._read(_ASSOCIATED, {"app_id": app_id, "name": name, "id1": id1})
        if not rows:
            raise NotFoundError(f"no association {name!r}")
        return [
            Association(name, id1, row.id2, row.data, row.assoc_time)
            for row in rows
            if row.id2 is not None
        ]

    async def count_associated_objects(
        self, app_id: int, name: str, ids: Sequence[int]
    ) -> list[int]:
        params = {"app_id": app_id, "name": name, "ids": list(dict.fromkeys(ids))}
        rows = await self._read(_ASSOCIATED_COUNTS, params)
        if not rows:
            raise NotFoundError(f"no association {name!r}")
        counts = {row.id1: row[2] for row in rows if row.id1 is not None}
        return [int(counts.get(obj_id, 0)) for obj_id in ids]

    async def get_associations(self, app_id: int, id1: int, id2: int) -> list[Association]:
        rows = await self._read(_ASSOCIATIONS_BETWEEN, {"app_id": app_id, "id1": id1, "id2": id2})
        return [Association(row.name, id1, id2, row.data, row.assoc_time) for row in rows]
