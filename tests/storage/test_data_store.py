"""The data store repository (storage.sql_data_store) on SQLite and PostgreSQL:
every operation, its errors, the bytes it charges and gives back, exact quota
and counters under concurrency, apps kept apart, and outages."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from openplatform.storage.apps import AppRecord, AppSettings
from openplatform.storage.crypto import SecretBox
from openplatform.storage.data_store import (
    INT64_MAX,
    ROW_BYTES,
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
)
from openplatform.storage.database import Database
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
from openplatform.storage.users import UserRecord

QUOTA = 10 * 1024 * 1024


async def new_app(database: Database, name: str = "store") -> tuple[AppRecord, Tenant]:
    app = await database.apps.create(AppSettings(name=name))
    return app, Tenant(app.id, QUOTA)


@pytest.fixture
async def app(database: Database) -> AppRecord:
    return (await new_app(database))[0]


@pytest.fixture
def tenant(app: AppRecord) -> Tenant:
    return Tenant(app.id, QUOTA)


@pytest.fixture
async def user(database: Database) -> UserRecord:
    return await database.users.create(username="prefs", password="long-enough-pw")


async def used_bytes(database: Database, app_id: int) -> int:
    """What the usage row says the app uses."""
    async with database.sessions.read() as session:
        used = await session.scalar(
            select(DataStoreUsage.used_bytes).where(DataStoreUsage.app_id == app_id)
        )
    return int(used or 0)


async def stored_bytes(database: Database, app_id: int) -> int:
    """What the app's rows say they cost (must equal used_bytes)."""
    types = select(DataObjectType.id).where(DataObjectType.app_id == app_id)
    objects = select(DataObject.id).where(DataObject.app_id == app_id)
    definitions = select(DataAssociationDefinition.id).where(
        DataAssociationDefinition.app_id == app_id
    )
    parts = [
        select(func.sum(DataPreference.bytes)).where(DataPreference.app_id == app_id),
        select(func.sum(DataObjectType.bytes)).where(DataObjectType.app_id == app_id),
        select(func.sum(DataObjectProperty.bytes)).where(DataObjectProperty.type_id.in_(types)),
        select(func.sum(DataObject.bytes)).where(DataObject.app_id == app_id),
        select(func.sum(DataObjectValue.bytes)).where(DataObjectValue.object_id.in_(objects)),
        select(func.sum(DataHashValue.bytes)).where(DataHashValue.type_id.in_(types)),
        select(func.sum(DataAssociationDefinition.bytes)).where(
            DataAssociationDefinition.app_id == app_id
        ),
        select(func.sum(DataAssociation.bytes)).where(
            DataAssociation.definition_id.in_(definitions)
        ),
    ]
    total = 0
    async with database.sessions.read() as session:
        for part in parts:
            total += int(await session.scalar(part) or 0)
    return total


async def assert_accounted(database: Database, app_id: int) -> int:
    used = await used_bytes(database, app_id)
    assert used == await stored_bytes(database, app_id)
    return used


async def book_type(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await store.create_type(tenant, "book")
    await store.define_property(tenant, "book", "title", PropType.STRING)
    await store.define_property(tenant, "book", "pages", PropType.INTEGER)
    await store.define_property(tenant, "book", "body", PropType.TEXT)


# --- preferences ---------------------------------------------------------------


async def test_preferences(database: Database, tenant: Tenant, user: UserRecord) -> None:
    store = database.data_store
    assert await store.get_preference(tenant.app_id, user.uid, 7) == ""
    await store.set_preferences(tenant, user.uid, {7: "你好 world+1&=", 0: "😀"}, replace=False)
    assert await store.get_preference(tenant.app_id, user.uid, 7) == "你好 world+1&="
    await store.set_preferences(tenant, user.uid, {200: "x", 7: "0"}, replace=False)
    assert await store.get_preferences(tenant.app_id, user.uid) == [
        Preference(0, "😀"),
        Preference(200, "x"),
    ]
    await store.set_preferences(tenant, user.uid, {5: "only"}, replace=True)
    assert await store.get_preferences(tenant.app_id, user.uid) == [Preference(5, "only")]
    assert await assert_accounted(database, tenant.app_id) == ROW_BYTES + 4
    await store.set_preferences(tenant, user.uid, {5: ""}, replace=False)
    assert await store.get_preferences(tenant.app_id, user.uid) == []
    assert await assert_accounted(database, tenant.app_id) == 0


@pytest.mark.parametrize("values", [{201: "x"}, {-1: "x"}, {1: "x" * 129}, {1: "nul\x00"}], ids=str)
async def test_preferences_refused(
    database: Database, tenant: Tenant, user: UserRecord, values: dict[int, str]
) -> None:
    with pytest.raises(InvalidValue):
        await database.data_store.set_preferences(tenant, user.uid, values, replace=False)


# --- types and properties ------------------------------------------------------


async def test_types_and_properties(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    await store.create_type(tenant, "author")
    assert await store.get_types(tenant.app_id) == ["author", "book"]
    assert await store.get_type(tenant.app_id, "author") == []
    assert await store.get_type(tenant.app_id, "book") == [
        PropertyDefinition("title", PropType.STRING),
        PropertyDefinition("pages", PropType.INTEGER),
        PropertyDefinition("body", PropType.TEXT),
    ]
    await store.rename_type(tenant, "book", "novel")
    await store.rename_property(tenant, "novel", "title", "name")
    await store.undefine_property(tenant, "novel", "body")
    assert await store.get_type(tenant.app_id, "novel") == [
        PropertyDefinition("name", PropType.STRING),
        PropertyDefinition("pages", PropType.INTEGER),
    ]
    await assert_accounted(database, tenant.app_id)
    await store.drop_type(tenant, "novel")
    await store.drop_type(tenant, "author")
    assert await store.get_types(tenant.app_id) == []
    assert await assert_accounted(database, tenant.app_id) == 0


async def test_type_and_property_errors(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    await store.create_type(tenant, "author")
    with pytest.raises(DuplicateError):
        await store.create_type(tenant, "book")
    with pytest.raises(DuplicateError):
        await store.rename_type(tenant, "book", "author")
    with pytest.raises(DuplicateError):
        await store.define_property(tenant, "book", "title", PropType.TEXT)
    with pytest.raises(DuplicateError):
        await store.rename_property(tenant, "book", "title", "pages")
    for call in (
        store.drop_type(tenant, "nope"),
        store.rename_type(tenant, "nope", "x"),
        store.get_type(tenant.app_id, "nope"),
        store.define_property(tenant, "nope", "x", PropType.STRING),
        store.undefine_property(tenant, "nope", "title"),
    ):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(InvalidOperation):
        await store.undefine_property(tenant, "book", "nope")
    with pytest.raises(InvalidOperation):
        await store.rename_property(tenant, "book", "nope", "x")


# --- objects -------------------------------------------------------------------


async def test_objects(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    first = await store.create_object(tenant, "book", {"title": "😀 &=+%", "pages": "12"})
    second = await store.create_object(tenant, "book", {"body": "中文" * 1000})
    assert (first, second) == (1, 2)  # numbered per app
    assert await store.get_objects(tenant.app_id, [second, first, second], ["pages"]) == [
        StoredObject(second, {"pages": None}),
        StoredObject(first, {"pages": 12}),
        StoredObject(second, {"pages": None}),
    ]
    await store.update_object(tenant, first, {"pages": 13}, replace=False)
    assert (await store.get_objects(tenant.app_id, [first], None))[0].values == {
        "title": "😀 &=+%",
        "pages": 13,
        "body": None,
    }
    await store.update_object(tenant, first, {"body": "b"}, replace=True)
    assert (await store.get_objects(tenant.app_id, [first], None))[0].values == {
        "title": None,
        "pages": None,
        "body": "b",
    }
    await assert_accounted(database, tenant.app_id)
    await store.delete_objects(tenant, [first, second])
    with pytest.raises(NotFoundError):
        await store.get_objects(tenant.app_id, [first], None)
    await store.drop_type(tenant, "book")
    assert await assert_accounted(database, tenant.app_id) == 0


async def test_object_errors(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    obj_id = await store.create_object(tenant, "book", {})
    with pytest.raises(NotFoundError):
        await store.create_object(tenant, "nope", {})
    with pytest.raises(InvalidOperation):
        await store.create_object(tenant, "book", {"color": "red"})
    with pytest.raises(InvalidOperation):
        await store.get_objects(tenant.app_id, [obj_id], ["color"])
    for value in ("x", 1.5, True, 2**63):
        with pytest.raises(InvalidValue):
            await store.update_object(tenant, obj_id, {"pages": value}, replace=False)
    with pytest.raises(InvalidValue):
        await store.update_object(tenant, obj_id, {"title": "x" * 256}, replace=False)
    with pytest.raises(InvalidValue):
        await store.update_object(tenant, obj_id, {"body": "é" * 40_000}, replace=False)
    with pytest.raises(NotFoundError):
        await store.update_object(tenant, 999, {}, replace=False)
    with pytest.raises(NotFoundError):
        await store.delete_objects(tenant, [obj_id, 999])
    # nothing of a refused multi-object delete happened
    assert len(await store.get_objects(tenant.app_id, [obj_id], None)) == 1


# --- hash keys -----------------------------------------------------------------


async def test_hash_values(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    assert await store.get_hash_value(tenant.app_id, "book", "k", "title") is None
    await store.set_hash_value(tenant, "book", "k", "title", "你好 world+1&=")
    assert await store.get_hash_value(tenant.app_id, "book", "k", "title") == "你好 world+1&="
    assert await store.increment_hash_value(tenant, "book", "k", "pages", 5) == 5
    assert await store.increment_hash_value(tenant, "book", "k", "pages", -7) == -2
    await store.set_hash_value(tenant, "book", "k", "pages", "40")
    assert await store.increment_hash_value(tenant, "book", "k", "pages", 2) == 42
    used = await assert_accounted(database, tenant.app_id)
    await store.increment_hash_value(tenant, "book", "k", "pages", 1)
    assert await used_bytes(database, tenant.app_id) == used  # an increment costs nothing
    await store.remove_hash_keys(tenant, "book", ["k", "never-set"])
    assert await store.get_hash_value(tenant.app_id, "book", "k", "pages") is None
    await store.drop_type(tenant, "book")
    assert await assert_accounted(database, tenant.app_id) == 0


async def test_hash_value_errors(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    with pytest.raises(NotFoundError):
        await store.get_hash_value(tenant.app_id, "nope", "k", "title")
    with pytest.raises(NotFoundError):
        await store.increment_hash_value(tenant, "nope", "k", "pages", 1)
    with pytest.raises(InvalidOperation):
        await store.get_hash_value(tenant.app_id, "book", "k", "nope")
    for prop in ("title", "body", "nope"):
        with pytest.raises(InvalidOperation):
            await store.increment_hash_value(tenant, "book", "k", prop, 1)
    with pytest.raises(InvalidValue):
        await store.set_hash_value(tenant, "book", "k", "pages", "many")
    for key in ("", "k" * 256, "a\x00b"):
        with pytest.raises(InvalidValue):
            await store.set_hash_value(tenant, "book", key, "title", "x")


async def test_increments_never_leave_64_bits(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    await book_type(database, tenant)
    await store.set_hash_value(tenant, "book", "k", "pages", INT64_MAX - 1)
    assert await store.increment_hash_value(tenant, "book", "k", "pages", 1) == INT64_MAX
    with pytest.raises(InvalidOperation):
        await store.increment_hash_value(tenant, "book", "k", "pages", 1)
    assert await store.get_hash_value(tenant.app_id, "book", "k", "pages") == INT64_MAX
    assert await store.increment_hash_value(tenant, "book", "k", "pages", -INT64_MAX) == 0


async def test_50_parallel_increments_add_exactly_50(database: Database, tenant: Tenant) -> None:
    """The first increment inserts the value while the others race it."""
    store = database.data_store
    await book_type(database, tenant)
    results = await asyncio.gather(
        *(store.increment_hash_value(tenant, "book", "hits", "pages", 1) for _ in range(50))
    )
    assert sorted(results) == list(range(1, 51))
    assert await store.get_hash_value(tenant.app_id, "book", "hits", "pages") == 50
    await assert_accounted(database, tenant.app_id)


# --- associations --------------------------------------------------------------


async def test_associations(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    info = AssocInfo("person", "user", False)
    await store.define_association(tenant, "follows", AssocType.ONE_WAY, info, info, None)
    await store.define_association(tenant, "friend", AssocType.SYMMETRIC, info, info, None)
    await store.define_association(
        tenant, "owns", AssocType.ASYMMETRIC, info, AssocInfo("thing", "book", True), "owned_by"
    )
    definitions = await store.get_association_definitions(tenant.app_id, ["owned_by"])
    assert definitions[0].inverse == "owns"
    assert definitions[0].assoc_info1 == AssocInfo("thing", "book", True)
    names = [d.name for d in await store.get_association_definitions(tenant.app_id, None)]
    assert names == ["follows", "friend", "owned_by", "owns"]

    await store.set_associations(
        tenant,
        [
            NewAssociation("follows", 1, 2, "since 2008", 100),
            NewAssociation("friend", 1, 3, "😀", 200),
            NewAssociation("owns", 1, 50, "", 300),
            NewAssociation("owns", 1, 51, "", 400),
        ],
    )

    async def associated(name: str, id1: int) -> list[tuple[int, str]]:
        return [
            (a.id2, a.data) for a in await store.get_associated_objects(tenant.app_id, name, id1)
        ]

    assert await associated("owns", 1) == [(51, ""), (50, "")]  # newest first
    assert await associated("friend", 3) == [(1, "😀")]  # two-way
    assert await associated("owned_by", 50) == [(1, "")]  # the inverse
    assert await store.get_associated_objects(tenant.app_id, "follows", 2) == []  # one way
    assert await store.count_associated_objects(tenant.app_id, "owns", [1, 2, 1]) == [2, 0, 2]
    assert [a.name for a in await store.get_associations(tenant.app_id, 1, 3)] == ["friend"]
    with pytest.raises(DuplicateError):  # a thing has one owner
        await store.set_associations(tenant, [NewAssociation("owns", 2, 50, "", 1)])

    await store.remove_associations(tenant, [AssociationKey("friend", 3, 1)])
    assert await store.count_associated_objects(tenant.app_id, "friend", [1, 3]) == [0, 0]
    await store.remove_associated_objects(tenant, "owns", 1)
    assert await store.count_associated_objects(tenant.app_id, "owned_by", [50, 51]) == [0, 0]
    await store.rename_association(tenant, "follows", "fans")
    await assert_accounted(database, tenant.app_id)
    for name in ("fans", "friend", "owned_by"):
        await store.undefine_association(tenant, name)
    assert await store.get_association_definitions(tenant.app_id, None) == []
    assert await assert_accounted(database, tenant.app_id) == 0


async def test_association_errors(database: Database, tenant: Tenant) -> None:
    store = database.data_store
    info = AssocInfo()
    await store.define_association(tenant, "likes", AssocType.ONE_WAY, info, info, None)
    with pytest.raises(DuplicateError):
        await store.define_association(tenant, "likes", AssocType.ONE_WAY, info, info, None)
    with pytest.raises(DuplicateError):
        await store.define_association(tenant, "x", AssocType.ASYMMETRIC, info, info, "likes")
    for assoc_type, inverse in ((AssocType.ASYMMETRIC, None), (AssocType.ONE_WAY, "inv")):
        with pytest.raises(InvalidValue):
            await store.define_association(tenant, "y", assoc_type, info, info, inverse)
    for call in (
        store.undefine_association(tenant, "nope"),
        store.rename_association(tenant, "nope", "x"),
        store.get_association_definitions(tenant.app_id, ["nope"]),
        store.set_associations(tenant, [NewAssociation("nope", 1, 2, "", 1)]),
        store.remove_associated_objects(tenant, "nope", 1),
        store.get_associated_objects(tenant.app_id, "nope", 1),
        store.count_associated_objects(tenant.app_id, "nope", [1]),
    ):
        with pytest.raises(NotFoundError):
            await call
    with pytest.raises(InvalidValue):
        await store.set_associations(tenant, [NewAssociation("likes", 1, 2, "x" * 256, 1)])


# --- quota ---------------------------------------------------------------------


async def test_quota_refuses_the_write_that_would_pass_it(database: Database) -> None:
    app, _ = await new_app(database)
    store = database.data_store
    await store.create_type(Tenant(app.id, QUOTA), "t")
    await store.define_property(Tenant(app.id, QUOTA), "t", "s", PropType.TEXT)
    used = await used_bytes(database, app.id)
    value_cost = ROW_BYTES + ROW_BYTES + 100  # the object, its value
    tight = Tenant(app.id, used + 2 * value_cost)
    for _ in range(2):
        await store.create_object(tight, "t", {"s": "x" * 100})
    with pytest.raises(QuotaExceeded):
        await store.create_object(tight, "t", {"s": "x" * 100})
    assert await assert_accounted(database, app.id) == used + 2 * value_cost
    # a refused write takes no object id either
    assert await store.create_object(Tenant(app.id, QUOTA), "t", {}) == 3


async def test_50_parallel_writers_at_the_quota_edge(database: Database) -> None:
    """Room for exactly 10 of 50 parallel writes: 10 succeed, 40 get 802, and
    the usage is exactly the sum of what is stored. Deletes give bytes back."""
    app, tenant = await new_app(database)
    store = database.data_store
    await store.create_type(tenant, "t")
    await store.define_property(tenant, "t", "s", PropType.STRING)
    base = await used_bytes(database, app.id)
    cost = ROW_BYTES + ROW_BYTES + 10
    edge = Tenant(app.id, base + 10 * cost + cost - 1)

    async def write() -> int | None:
        try:
            return await store.create_object(edge, "t", {"s": "0123456789"})
        except QuotaExceeded:
            return None

    created = [obj_id for obj_id in await asyncio.gather(*(write() for _ in range(50))) if obj_id]
    assert len(created) == 10
    assert await assert_accounted(database, app.id) == base + 10 * cost
    await store.delete_objects(edge, created[:3])
    assert await assert_accounted(database, app.id) == base + 7 * cost
    again = [obj_id for obj_id in await asyncio.gather(*(write() for _ in range(10))) if obj_id]
    assert len(again) == 3


# --- apps apart, outages -------------------------------------------------------


async def test_two_apps_with_the_same_names_and_ids_stay_apart(
    database: Database, user: UserRecord
) -> None:
    store = database.data_store
    (one, first), (two, second) = await new_app(database, "one"), await new_app(database, "two")
    for tenant, title in ((first, "one's"), (second, "two's")):
        await book_type(database, tenant)
        assert await store.create_object(tenant, "book", {"title": title}) == 1
        await store.set_hash_value(tenant, "book", "k", "title", title)
        await store.set_preferences(tenant, user.uid, {1: title}, replace=False)
        await store.define_association(
            tenant, "likes", AssocType.ONE_WAY, AssocInfo(), AssocInfo(), None
        )
        await store.set_associations(tenant, [NewAssociation("likes", 1, 2, title, 1)])
    for app, title in ((one, "one's"), (two, "two's")):
        assert (await store.get_objects(app.id, [1], ["title"]))[0].values == {"title": title}
        assert await store.get_hash_value(app.id, "book", "k", "title") == title
        assert await store.get_preference(app.id, user.uid, 1) == title
        assert [a.data for a in await store.get_associations(app.id, 1, 2)] == [title]
    await store.drop_type(first, "book")
    assert await store.get_types(two.id) == ["book"]
    assert await store.get_types(one.id) == []


async def test_an_unreachable_database_is_unavailable_after_retries() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/none", SecretBox("k"))
    store = database.data_store
    try:
        with pytest.raises(DatabaseUnavailable):
            await store.create_type(Tenant(1, QUOTA), "t")
        with pytest.raises(DatabaseUnavailable):
            await store.get_types(1)
    finally:
        await database.close()


async def test_deleting_an_app_deletes_its_data(database: Database, user: UserRecord) -> None:
    store = database.data_store
    (gone, doomed), (kept, other) = await new_app(database, "gone"), await new_app(database, "kept")
    for tenant in (doomed, other):
        await book_type(database, tenant)
        await store.create_object(tenant, "book", {"title": "t", "pages": 1})
        await store.increment_hash_value(tenant, "book", "k", "pages", 1)
        await store.set_preferences(tenant, user.uid, {1: "x"}, replace=False)
        await store.define_association(
            tenant, "likes", AssocType.SYMMETRIC, AssocInfo(), AssocInfo(), None
        )
        await store.set_associations(tenant, [NewAssociation("likes", 1, 2, "", 1)])
    kept_bytes = await assert_accounted(database, kept.id)
    await database.apps.delete(gone.id)
    assert await stored_bytes(database, gone.id) == 0
    assert await used_bytes(database, gone.id) == 0
    assert await store.get_types(gone.id) == []
    assert await store.get_preferences(gone.id, user.uid) == []
    assert await assert_accounted(database, kept.id) == kept_bytes
