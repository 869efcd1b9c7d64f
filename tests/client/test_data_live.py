"""The SDK's data-store helpers against the live server (uvicorn, SQLite):
every ``data.*`` method through ``client.data``, and its errors as the SDK's
data-store exceptions."""

from __future__ import annotations

import pytest

from openplatform_client import (
    AssociatedObject,
    AssociationType,
    AsyncClient,
    Client,
    InvalidOperationError,
    ObjectExistsError,
    ObjectNotFoundError,
    PermissionDeniedError,
    PropertyDefinition,
    PropertyType,
)
from tests.client.live import LiveWorld


def test_every_data_method(live_world: LiveWorld) -> None:
    app = live_world.app
    with Client(app.api_key, app.secret, base_url=live_world.base_url) as client:
        data = client.data
        data.create_object_type("sdk_book")
        data.define_object_property("sdk_book", "title", PropertyType.STRING)
        data.define_object_property("sdk_book", "pages", PropertyType.INTEGER)
        data.define_object_property("sdk_book", "body", 3)
        data.rename_object_property("sdk_book", "body", "text")
        data.undefine_object_property("sdk_book", "text")
        assert data.get_object_type("sdk_book") == [
            PropertyDefinition("title", PropertyType.STRING),
            PropertyDefinition("pages", PropertyType.INTEGER),
        ]
        assert "sdk_book" in data.get_object_types()

        obj_id = data.create_object("sdk_book", {"title": "你好 world+1&=", "pages": 3})
        other = data.create_object("sdk_book")
        data.update_object(other, {"pages": 9})
        data.set_object_property(obj_id, "pages", 4)
        assert data.get_object_property(obj_id, "pages") == 4
        assert data.get_object(obj_id) == {"obj_id": obj_id, "title": "你好 world+1&=", "pages": 4}
        assert data.get_objects([other, obj_id], prop_names=["pages"]) == [
            {"obj_id": other, "pages": 9},
            {"obj_id": obj_id, "pages": 4},
        ]
        data.delete_object(other)
        data.delete_objects([obj_id])

        data.set_hash_value("sdk_book", "k,1", "😀", "title")
        assert data.get_hash_value("sdk_book", "k,1", "title") == "😀"
        assert data.inc_hash_value("sdk_book", "k,1", "pages") == 1
        assert data.inc_hash_value("sdk_book", "k,1", "pages", increment=41) == 42
        data.remove_hash_key("sdk_book", "k,1")
        data.remove_hash_keys("sdk_book", ["k,1", "k2"])
        assert data.get_hash_value("sdk_book", "k,1", "pages") == ""

        data.define_association(
            "sdk_owns", AssociationType.TWO_WAY_ASYMMETRIC, {}, {"unique": True}, "sdk_owned_by"
        )
        data.set_association("sdk_owns", 1, 50, data="first", assoc_time=100)
        data.set_associations("sdk_owns", 1, [51, 52], assoc_time=200)
        assert data.get_associated_objects("sdk_owns", 1) == [
            AssociatedObject(51, "", 200),
            AssociatedObject(52, "", 200),
            AssociatedObject(50, "first", 100),
        ]
        assert data.get_associated_object_count("sdk_owned_by", 50) == 1
        assert data.get_associated_object_counts("sdk_owns", [1, 2]) == [3, 0]
        assert data.get_associations(1, 50) == [
            {"name": "sdk_owns", "id1": 1, "id2": 50, "data": "first", "time": 100}
        ]
        data.remove_association("sdk_owns", 1, 50)
        data.remove_associations("sdk_owns", 1, [51])
        data.remove_associated_objects("sdk_owns", 1)
        assert data.get_associated_object_count("sdk_owns", 1) == 0
        data.rename_association("sdk_owns", "sdk_has")
        definition = data.get_association_definition("sdk_owned_by")
        assert (definition.inverse, definition.assoc_type) == ("sdk_has", 3)
        names = [d.name for d in data.get_association_definitions()]
        assert {"sdk_has", "sdk_owned_by"} <= set(names)
        data.undefine_association("sdk_has")

        data.rename_object_type("sdk_book", "sdk_novel")
        data.drop_object_type("sdk_novel")

        with pytest.raises(ObjectNotFoundError) as not_found:
            data.get_object(obj_id)
        assert not_found.value.code == 803 and not_found.value.request_id
        data.create_object_type("sdk_dup")
        with pytest.raises(ObjectExistsError):
            data.create_object_type("sdk_dup")
        with pytest.raises(InvalidOperationError):
            data.create_object("sdk_dup", {"x": 1})  # no property x
        with pytest.raises(PermissionDeniedError):
            data.get_user_preferences()  # a user's, not the app's


async def test_preferences_for_a_user(live_world: LiveWorld) -> None:
    tokens = await live_world.issue(live_world.alice, "basic data")
    app = live_world.app
    with Client(
        app.api_key,
        app.secret,
        access_token=tokens.access_token,
        base_url=live_world.base_url,
    ) as client:
        client.data.set_user_preference(7, "你好 world+1&=")
        client.data.set_user_preferences({1: "a", 2: "b"})
        assert client.data.get_user_preference(7) == "你好 world+1&="
        assert client.data.get_user_preferences() == {1: "a", 2: "b", 7: "你好 world+1&="}
        client.data.set_user_preferences({3: "c"}, replace=True)
        assert client.data.get_user_preferences() == {3: "c"}


def test_batches_against_the_live_server(live_world: LiveWorld) -> None:
    """The SDK's batch, sent as batch.run to the real gateway: items in feed
    order with their own results and errors, serial_only, 952 and 953."""
    app = live_world.app
    with Client(app.api_key, app.secret, base_url=live_world.base_url) as client:
        client.data.create_object_type("sdk_batch")
        client.data.define_object_property("sdk_batch", "n", PropertyType.INTEGER)
        with client.batch(serial_only=True) as batch:
            first = batch.data.inc_hash_value("sdk_batch", "k", "n")
            second = batch.data.inc_hash_value("sdk_batch", "k", "n", increment=9)
            missing = batch.data.get_object(10**9)
            info = batch.application.get_public_info(application_id=app.id)
        assert (first.result(), second.result()) == (1, 10)
        assert isinstance(missing.exception(), ObjectNotFoundError)
        assert info.result().name == app.name
        batch = client.begin_batch()
        queued = [batch.data.get_object_types() for _ in range(20)]
        client.end_batch()
        assert all("sdk_batch" in item.result() for item in queued)


async def test_async_batch_against_the_live_server(live_world: LiveWorld) -> None:
    app = live_world.app
    async with AsyncClient(app.api_key, app.secret, base_url=live_world.base_url) as client:
        async with client.batch() as batch:
            items = [batch.application.get_public_info(application_id=app.id) for _ in range(5)]
        assert [item.result().app_id for item in items] == [app.id] * 5
