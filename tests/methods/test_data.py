"""data.* methods (PROTOCOL §4 "data") through HTTP, signed, on SQLite + memory
and PostgreSQL + Redis: every method's result and each of its errors (6, 100,
800-804), values of any UTF-8 through GET and POST, two apps kept apart."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from sqlalchemy import update

from openplatform.methods import default_registry
from openplatform.storage.apps import AppSettings
from openplatform.storage.models import DataAssociationDefinition
from tests.gateway.client import ApiClient
from tests.gateway.world import World, issue
from tests.methods.data_calls import PER_USER, VALID_PARAMS, DataCalls, done, error, ok

UTF8_VALUES = ["你好 world+1&=", "😀 emoji 🎉", "%20 %zz +&=?#", "日本語 한국어 ñ", " spaced "]


@pytest.fixture
async def calls(world: World) -> DataCalls:
    await world.configure(scopes=["basic", "email", "mobile", "data"])
    tokens = await world.issue(world.alice, "basic data")
    return DataCalls(world, world.client, tokens)


async def book_type(calls: DataCalls) -> None:
    done(await calls.app("createObjectType", {"name": "book"}))
    for prop_name, prop_type in (("title", "2"), ("pages", "1"), ("body", "3")):
        params = {"obj_type": "book", "prop_name": prop_name, "prop_type": prop_type}
        done(await calls.app("defineObjectProperty", params))


def test_every_data_method_is_registered_batchable_and_scoped() -> None:
    registry = default_registry()
    data = [spec for spec in registry if spec.name.startswith("data.")]
    assert len(data) == 39
    assert all(spec.batchable and spec.scope == "data" for spec in data)
    per_user = {spec.name for spec in data if spec.needs_user}
    assert per_user == {
        "data.getUserPreference",
        "data.setUserPreference",
        "data.getUserPreferences",
        "data.setUserPreferences",
    }


async def test_every_data_method_on_a_user_credential_needs_the_data_scope(
    calls: DataCalls, world: World
) -> None:
    assert {spec.name for spec in default_registry() if spec.name.startswith("data.")} == {
        f"data.{method}" for method in VALID_PARAMS
    }
    basic = await world.issue(world.alice, "basic")
    for method, params in VALID_PARAMS.items():
        error(await calls.user(method, params, tokens=basic), 6, "data")
    for method in PER_USER:  # and preferences are always a user's
        error(await calls.app(method, VALID_PARAMS[method]), 6)


# --- preferences ---------------------------------------------------------------


async def test_preferences(calls: DataCalls) -> None:
    assert ok(await calls.user("getUserPreference", {"pref_id": "7"})) == {"value": ""}
    done(await calls.user("setUserPreference", {"pref_id": "7", "value": "a"}))
    done(await calls.user("setUserPreference", {"pref_id": "200", "value": "b"}))
    assert ok(await calls.user("getUserPreference", {"pref_id": "7"})) == {"value": "a"}
    assert ok(await calls.user("getUserPreferences")) == [
        {"pref_id": 7, "value": "a"},
        {"pref_id": 200, "value": "b"},
    ]
    done(await calls.user("setUserPreference", {"pref_id": "7", "value": "0"}))  # deletes
    done(await calls.user("setUserPreference", {"pref_id": "200", "value": ""}))  # deletes
    assert ok(await calls.user("getUserPreferences")) == []

    values = json.dumps({"0": "zero", "1": "一", "2": 2})
    done(await calls.user("setUserPreferences", {"values": values}))
    done(await calls.user("setUserPreferences", {"values": '{"1": "0", "3": "x"}'}))
    assert ok(await calls.user("getUserPreferences")) == [
        {"pref_id": 0, "value": "zero"},
        {"pref_id": 2, "value": "2"},
        {"pref_id": 3, "value": "x"},
    ]
    done(await calls.user("setUserPreferences", {"values": '{"9": "z"}', "replace": "true"}))
    assert ok(await calls.user("getUserPreferences")) == [{"pref_id": 9, "value": "z"}]


async def test_preferences_are_per_user(calls: DataCalls, world: World) -> None:
    bob = await world.issue(world.bob, "basic data")
    done(await calls.user("setUserPreference", {"pref_id": "1", "value": "alice's"}))
    assert ok(await calls.user("getUserPreference", {"pref_id": "1"}, tokens=bob)) == {"value": ""}
    bearer = await world.client.bearer(
        "data.getUserPreference", calls.user_tokens.access_token, {"pref_id": "1"}
    )
    assert ok(bearer) == {"value": "alice's"}


@pytest.mark.parametrize("value", UTF8_VALUES)
@pytest.mark.parametrize(("write", "read"), [("POST", "GET"), ("GET", "POST")])
async def test_preference_values_round_trip(
    calls: DataCalls, value: str, write: Any, read: Any
) -> None:
    done(await calls.user("setUserPreference", {"pref_id": "5", "value": value}, http=write))
    got = await calls.user("getUserPreference", {"pref_id": "5"}, http=read)
    assert ok(got) == {"value": value}


async def test_preference_errors(calls: DataCalls, world: World) -> None:
    # 6: preferences are a user's; a user credential needs the data scope
    error(await calls.app("getUserPreference", {"pref_id": "1"}), 6)
    basic = await world.issue(world.alice, "basic")
    error(await calls.user("getUserPreferences", tokens=basic), 6, "data")
    error(await calls.user("setUserPreference", {"pref_id": "1", "value": "x"}, tokens=basic), 6)
    for params, detail in (
        ({"pref_id": "201", "value": "x"}, "pref_id"),
        ({"pref_id": "-1", "value": "x"}, "pref_id"),
        ({"pref_id": "one", "value": "x"}, "pref_id"),
        ({"value": "x"}, "pref_id"),
        ({"pref_id": "1"}, "value"),
        ({"pref_id": "1", "value": "x" * 129}, "value"),
        ({"pref_id": "1", "value": "nul\x00"}, "value"),
    ):
        error(await calls.user("setUserPreference", params), 100, detail)
    for values in ("{", "[1]", '{"201": "x"}', '{"a": "x"}', '{"1": ["x"]}', '{"1": null}'):
        error(await calls.user("setUserPreferences", {"values": values}), 100, "values")
    too_long = json.dumps({"1": "x" * 129})
    error(await calls.user("setUserPreferences", {"values": too_long}), 100, "values")
    error(await calls.user("setUserPreferences", {"values": "{}", "replace": "yes"}), 100)
    # nothing of a refused write was kept
    assert ok(await calls.user("getUserPreferences")) == []


# --- object types --------------------------------------------------------------


async def test_object_types(calls: DataCalls) -> None:
    await book_type(calls)
    done(await calls.app("createObjectType", {"name": "author"}))
    assert ok(await calls.app("getObjectTypes")) == [{"name": "author"}, {"name": "book"}]
    assert ok(await calls.app("getObjectType", {"obj_type": "book"})) == [
        {"name": "title", "prop_type": 2},
        {"name": "pages", "prop_type": 1},
        {"name": "body", "prop_type": 3},
    ]
    done(await calls.app("renameObjectType", {"obj_type": "book", "new_name": "novel"}))
    rename = {"obj_type": "novel", "prop_name": "title", "new_name": "name"}
    done(await calls.app("renameObjectProperty", rename))
    done(await calls.app("undefineObjectProperty", {"obj_type": "novel", "prop_name": "body"}))
    assert ok(await calls.app("getObjectType", {"obj_type": "novel"}, http="GET")) == [
        {"name": "name", "prop_type": 2},
        {"name": "pages", "prop_type": 1},
    ]
    done(await calls.app("dropObjectType", {"obj_type": "novel"}))
    assert ok(await calls.app("getObjectTypes")) == [{"name": "author"}]
    # a user credential with the data scope may use the app's types too
    assert ok(await calls.user("getObjectTypes")) == [{"name": "author"}]


async def test_object_type_errors(calls: DataCalls, world: World) -> None:
    await book_type(calls)
    cases: list[tuple[str, dict[str, str], int, str | None]] = [
        ("createObjectType", {"name": "book"}, 804, "book"),
        ("createObjectType", {"name": "Book"}, 100, "name"),
        ("createObjectType", {"name": "1book"}, 100, "name"),
        ("createObjectType", {"name": "b" * 33}, 100, "name"),
        ("createObjectType", {}, 100, "name"),
        ("dropObjectType", {"obj_type": "nope"}, 803, "nope"),
        ("renameObjectType", {"obj_type": "nope", "new_name": "x"}, 803, None),
        ("renameObjectType", {"obj_type": "book", "new_name": "book"}, 804, None),
        ("renameObjectType", {"obj_type": "book", "new_name": "Bad"}, 100, "new_name"),
        ("getObjectType", {"obj_type": "nope"}, 803, None),
        ("getObjectType", {"obj_type": "no-pe"}, 100, "obj_type"),
        (
            "defineObjectProperty",
            {"obj_type": "book", "prop_name": "title", "prop_type": "2"},
            804,
            "title",
        ),
        (
            "defineObjectProperty",
            {"obj_type": "book", "prop_name": "x", "prop_type": "4"},
            100,
            "prop_type",
        ),
        (
            "defineObjectProperty",
            {"obj_type": "book", "prop_name": "x", "prop_type": "0"},
            100,
            "prop_type",
        ),
        (
            "defineObjectProperty",
            {"obj_type": "book", "prop_name": "obj_id", "prop_type": "1"},
            100,
            "reserved",
        ),
        (
            "defineObjectProperty",
            {"obj_type": "nope", "prop_name": "x", "prop_type": "1"},
            803,
            None,
        ),
        ("undefineObjectProperty", {"obj_type": "book", "prop_name": "nope"}, 801, "nope"),
        ("undefineObjectProperty", {"obj_type": "nope", "prop_name": "x"}, 803, None),
        (
            "renameObjectProperty",
            {"obj_type": "book", "prop_name": "title", "new_name": "pages"},
            804,
            None,
        ),
        (
            "renameObjectProperty",
            {"obj_type": "book", "prop_name": "nope", "new_name": "x"},
            801,
            None,
        ),
    ]
    for method, params, code, detail in cases:
        response = await calls.app(method, params)
        assert response.json().get("error_code") == code, (method, params, response.text)
        error(response, code, detail)
    basic = await world.issue(world.alice, "basic")
    error(await calls.user("createObjectType", {"name": "x"}, tokens=basic), 6, "data")


# --- objects -------------------------------------------------------------------


async def test_objects(calls: DataCalls) -> None:
    await book_type(calls)
    props = json.dumps({"title": "Dune", "pages": 412})
    first = ok(await calls.app("createObject", {"obj_type": "book", "properties": props}))
    second = ok(await calls.app("createObject", {"obj_type": "book"}))
    assert (first, second) == ({"obj_id": 1}, {"obj_id": 2})
    assert ok(await calls.app("getObject", {"obj_id": "1"})) == {
        "obj_id": 1,
        "title": "Dune",
        "pages": 412,
        "body": "",
    }
    assert ok(await calls.app("getObjects", {"obj_ids": "2,1", "prop_names": "pages"})) == [
        {"obj_id": 2, "pages": ""},
        {"obj_id": 1, "pages": 412},
    ]
    assert ok(await calls.app("getObjects", {"obj_ids": "[1]", "prop_names": '["title"]'})) == [
        {"obj_id": 1, "title": "Dune"}
    ]
    params = {"obj_id": "2", "prop_name": "pages", "prop_value": "7"}
    done(await calls.app("setObjectProperty", params))
    assert ok(await calls.app("getObjectProperty", {"obj_id": "2", "prop_name": "pages"})) == {
        "value": 7
    }
    merge = {"obj_id": "1", "properties": '{"pages": 413}'}
    done(await calls.app("updateObject", merge))
    assert ok(await calls.app("getObject", {"obj_id": "1", "prop_names": "title,pages"})) == {
        "obj_id": 1,
        "title": "Dune",
        "pages": 413,
    }
    replace = {"obj_id": "1", "properties": '{"body": "text"}', "replace": "1"}
    done(await calls.app("updateObject", replace))
    assert ok(await calls.app("getObject", {"obj_id": "1"})) == {
        "obj_id": 1,
        "title": "",
        "pages": "",
        "body": "text",
    }
    done(await calls.app("deleteObject", {"obj_id": "1"}))
    error(await calls.app("getObject", {"obj_id": "1"}), 803)
    third = ok(await calls.app("createObject", {"obj_type": "book"}))["obj_id"]
    assert third == 3  # ids are not reused
    done(await calls.app("deleteObjects", {"obj_ids": f"[2, {third}]"}))
    error(await calls.app("getObjects", {"obj_ids": "2"}), 803)


@pytest.mark.parametrize("value", UTF8_VALUES)
@pytest.mark.parametrize(("write", "read"), [("POST", "GET"), ("GET", "POST")])
async def test_object_values_round_trip(
    calls: DataCalls, value: str, write: Any, read: Any
) -> None:
    await book_type(calls)
    props = json.dumps({"title": value, "body": value * 3}, ensure_ascii=False)
    created = await calls.app("createObject", {"obj_type": "book", "properties": props}, write)
    obj_id = str(ok(created)["obj_id"])
    got = ok(await calls.app("getObject", {"obj_id": obj_id}, read))
    assert (got["title"], got["body"]) == (value, value * 3)
    set_params = {"obj_id": obj_id, "prop_name": "title", "prop_value": value[::-1]}
    done(await calls.app("setObjectProperty", set_params, write))
    got = await calls.app("getObjectProperty", {"obj_id": obj_id, "prop_name": "title"}, read)
    assert ok(got) == {"value": value[::-1]}


async def test_object_errors(calls: DataCalls) -> None:
    await book_type(calls)
    ok(await calls.app("createObject", {"obj_type": "book"}))
    big_text = json.dumps({"body": "é" * 40_000})
    cases: list[tuple[str, dict[str, str], int, str | None]] = [
        ("createObject", {"obj_type": "nope"}, 803, None),
        ("createObject", {"obj_type": "book", "properties": '{"color": "red"}'}, 801, "color"),
        ("createObject", {"obj_type": "book", "properties": '{"pages": "many"}'}, 100, "pages"),
        ("createObject", {"obj_type": "book", "properties": '{"pages": 1.5}'}, 100, "pages"),
        ("createObject", {"obj_type": "book", "properties": '{"title": 5}'}, 100, "title"),
        ("createObject", {"obj_type": "book", "properties": "[1]"}, 100, "properties"),
        ("createObject", {"obj_type": "book", "properties": "{"}, 100, "properties"),
        ("createObject", {"obj_type": "book", "properties": big_text}, 100, "body"),
        (
            "createObject",
            {"obj_type": "book", "properties": json.dumps({"title": "x" * 256})},
            100,
            "title",
        ),
        ("getObject", {"obj_id": "99"}, 803, "99"),
        ("getObject", {"obj_id": "0"}, 100, "obj_id"),
        ("getObject", {"obj_id": "x"}, 100, "obj_id"),
        ("getObject", {"obj_id": "99999999999999999999"}, 100, "obj_id"),
        ("getObject", {"obj_id": "1", "prop_names": "color"}, 801, "color"),
        ("getObject", {"obj_id": "1", "prop_names": "Color"}, 100, "prop_names"),
        ("getObjects", {"obj_ids": "1,99"}, 803, "99"),
        ("getObjects", {"obj_ids": ",".join(["1"] * 101)}, 100, "obj_ids"),
        ("getObjectProperty", {"obj_id": "1", "prop_name": "color"}, 801, None),
        ("getObjectProperty", {"obj_id": "99", "prop_name": "title"}, 803, None),
        ("setObjectProperty", {"obj_id": "1", "prop_name": "color", "prop_value": "x"}, 801, None),
        ("setObjectProperty", {"obj_id": "1", "prop_name": "pages", "prop_value": "x"}, 100, None),
        ("setObjectProperty", {"obj_id": "99", "prop_name": "title", "prop_value": "x"}, 803, None),
        ("updateObject", {"obj_id": "99", "properties": "{}"}, 803, None),
        ("updateObject", {"obj_id": "1"}, 100, "properties"),
        ("updateObject", {"obj_id": "1", "properties": '{"color": 1}'}, 801, None),
        ("deleteObject", {"obj_id": "99"}, 803, None),
        ("deleteObjects", {"obj_ids": "1,99"}, 803, "99"),
        ("deleteObjects", {"obj_ids": "1,-2"}, 100, "obj_ids"),
    ]
    for method, params, code, detail in cases:
        response = await calls.app(method, params)
        assert response.json().get("error_code") == code, (method, params, response.text)
        error(response, code, detail)
    # nothing of a refused delete happened
    assert ok(await calls.app("getObject", {"obj_id": "1", "prop_names": "pages"})) == {
        "obj_id": 1,
        "pages": "",
    }


# --- hash keys -----------------------------------------------------------------


async def test_hash_keys(calls: DataCalls) -> None:
    await book_type(calls)
    key = {"obj_type": "book", "key": "isbn:978-0441013593"}
    assert ok(await calls.app("getHashValue", {**key, "prop_name": "title"})) == {"value": ""}
    done(await calls.app("setHashValue", {**key, "prop_name": "title", "value": "Dune"}))
    assert ok(await calls.app("getHashValue", {**key, "prop_name": "title"})) == {"value": "Dune"}
    assert ok(await calls.app("incHashValue", {**key, "prop_name": "pages"})) == {"value": 1}
    inc = {**key, "prop_name": "pages", "increment": "10"}
    assert ok(await calls.app("incHashValue", inc)) == {"value": 11}
    inc["increment"] = "-20"
    assert ok(await calls.app("incHashValue", inc)) == {"value": -9}
    assert ok(await calls.app("getHashValue", {**key, "prop_name": "pages"})) == {"value": -9}
    done(await calls.app("setHashValue", {**key, "prop_name": "pages", "value": "100"}))
    assert ok(await calls.app("incHashValue", {**key, "prop_name": "pages"})) == {"value": 101}
    done(await calls.app("removeHashKey", key))
    assert ok(await calls.app("getHashValue", {**key, "prop_name": "pages"})) == {"value": ""}
    for name in ("a", "b,c", "d"):
        params = {"obj_type": "book", "key": name, "prop_name": "title", "value": name}
        done(await calls.app("setHashValue", params))
    done(await calls.app("removeHashKeys", {"obj_type": "book", "keys": '["a", "b,c"]'}))
    done(await calls.app("removeHashKeys", {"obj_type": "book", "keys": "d,never-set"}))
    for name in ("a", "b,c", "d"):
        params = {"obj_type": "book", "key": name, "prop_name": "title"}
        assert ok(await calls.app("getHashValue", params)) == {"value": ""}


@pytest.mark.parametrize("value", UTF8_VALUES)
@pytest.mark.parametrize(("write", "read"), [("POST", "GET"), ("GET", "POST")])
async def test_hash_keys_and_values_round_trip(
    calls: DataCalls, value: str, write: Any, read: Any
) -> None:
    await book_type(calls)
    key = {"obj_type": "book", "key": value, "prop_name": "title"}
    done(await calls.app("setHashValue", {**key, "value": value}, write))
    assert ok(await calls.app("getHashValue", key, read)) == {"value": value}
    counter = {"obj_type": "book", "key": value, "prop_name": "pages"}
    assert ok(await calls.app("incHashValue", counter, write)) == {"value": 1}


async def test_hash_key_errors(calls: DataCalls) -> None:
    await book_type(calls)
    key = {"obj_type": "book", "key": "k"}
    cases: list[tuple[str, dict[str, str], int, str | None]] = [
        ("incHashValue", {**key, "prop_name": "title"}, 801, "title"),  # a string
        ("incHashValue", {**key, "prop_name": "body"}, 801, "body"),  # a text
        ("incHashValue", {**key, "prop_name": "nope"}, 801, "nope"),
        ("incHashValue", {"obj_type": "nope", "key": "k", "prop_name": "pages"}, 803, None),
        ("incHashValue", {**key, "prop_name": "pages", "increment": "1.5"}, 100, "increment"),
        ("incHashValue", {**key, "prop_name": "pages", "increment": "9" * 20}, 100, "increment"),
        ("getHashValue", {**key, "prop_name": "nope"}, 801, None),
        ("getHashValue", {"obj_type": "nope", "key": "k", "prop_name": "title"}, 803, None),
        ("getHashValue", {"obj_type": "book", "prop_name": "title"}, 100, "key"),
        ("setHashValue", {**key, "prop_name": "pages", "value": "many"}, 100, None),
        ("setHashValue", {**key, "prop_name": "nope", "value": "x"}, 801, None),
        (
            "setHashValue",
            {"obj_type": "book", "key": "", "prop_name": "title", "value": "x"},
            100,
            "key",
        ),
        ("setHashValue", {**key, "key": "k" * 256, "prop_name": "title", "value": "x"}, 100, "key"),
        ("removeHashKey", {"obj_type": "nope", "key": "k"}, 803, None),
        ("removeHashKeys", {"obj_type": "book", "keys": "[1, {}]"}, 100, "keys"),
        ("removeHashKeys", {"obj_type": "book", "keys": json.dumps(["k"] * 101)}, 100, "keys"),
    ]
    for method, params, code, detail in cases:
        response = await calls.app(method, params)
        assert response.json().get("error_code") == code, (method, params, response.text)
        error(response, code, detail)
    counter = {**key, "prop_name": "pages", "value": str(2**63 - 1)}
    done(await calls.app("setHashValue", counter))
    error(await calls.app("incHashValue", {**key, "prop_name": "pages"}), 801)  # overflow


async def test_50_parallel_increments_add_exactly_50(calls: DataCalls) -> None:
    await book_type(calls)
    counter = {"obj_type": "book", "key": "hits", "prop_name": "pages"}
    responses = await calls.parallel(50, "incHashValue", counter)
    values = sorted(ok(response)["value"] for response in responses)
    assert values == list(range(1, 51))
    assert ok(await calls.app("getHashValue", counter)) == {"value": 50}
    more = await calls.parallel(50, "incHashValue", counter)
    assert sorted(ok(response)["value"] for response in more) == list(range(51, 101))


# --- associations --------------------------------------------------------------


async def test_associations(calls: DataCalls) -> None:
    info = json.dumps({"alias": "person", "object_type": "user"})
    thing = json.dumps({"alias": "thing", "object_type": "book", "unique": True})
    define = calls.app
    done(await define("defineAssociation", {"name": "follows", "assoc_type": "1"}))
    done(await define("defineAssociation", {"name": "friend", "assoc_type": "2"}))
    done(
        await define(
            "defineAssociation",
            {
                "name": "owns",
                "assoc_type": "3",
                "assoc_info1": info,
                "assoc_info2": thing,
                "inverse": "owned_by",
            },
        )
    )
    assert ok(await calls.app("getAssociationDefinition", {"name": "owned_by"})) == {
        "name": "owned_by",
        "assoc_type": 3,
        "assoc_info1": {"alias": "thing", "object_type": "book", "unique": True},
        "assoc_info2": {"alias": "person", "object_type": "user", "unique": False},
        "inverse": "owns",
    }
    definitions = ok(await calls.app("getAssociationDefinitions"))
    assert [d["name"] for d in definitions] == ["follows", "friend", "owned_by", "owns"]
    assert definitions[0]["inverse"] == ""

    link = {"name": "follows", "obj_id1": "1", "obj_id2": "2", "data": "since 2008"}
    done(await calls.app("setAssociation", {**link, "assoc_time": "100"}))
    friends = {"name": "friend", "obj_id1": "1", "obj_id2": "3", "data": "😀"}
    done(await calls.app("setAssociation", {**friends, "assoc_time": "200"}))
    owns = {"name": "owns", "obj_id1": "1", "obj_ids": "50,51", "assoc_time": "300"}
    done(await calls.app("setAssociations", owns))
    done(await calls.app("setAssociation", {"name": "owns", "obj_id1": "1", "obj_id2": "51"}))
    assert ok(await calls.app("getAssociatedObjects", {"name": "owns", "obj_id": "1"})) == [
        {"id2": 51, "data": "", "time": pytest.approx(time.time(), abs=60)},  # set again: now
        {"id2": 50, "data": "", "time": 300},
    ]
    back = {"name": "friend", "obj_id": "3", "no_data": "true"}
    assert ok(await calls.app("getAssociatedObjects", back)) == [{"id2": 1, "time": 200}]
    assert ok(await calls.app("getAssociatedObjects", {"name": "owned_by", "obj_id": "50"})) == [
        {"id2": 1, "data": "", "time": 300}
    ]
    assert ok(await calls.app("getAssociatedObjects", {"name": "follows", "obj_id": "2"})) == []
    count = {"name": "owns", "obj_id": "1"}
    assert ok(await calls.app("getAssociatedObjectCount", count)) == {"value": 2}
    counts = {"name": "owns", "obj_ids": "1,2,1"}
    assert ok(await calls.app("getAssociatedObjectCounts", counts)) == [
        {"value": 2},
        {"value": 0},
        {"value": 2},
    ]
    assert ok(await calls.app("getAssociations", {"obj_id1": "1", "obj_id2": "2"})) == [
        {"name": "follows", "id1": 1, "id2": 2, "data": "since 2008", "time": 100}
    ]
    # a thing has one owner: owned_by is unique on its first side
    error(await calls.app("setAssociation", {"name": "owns", "obj_id1": "9", "obj_id2": "50"}), 804)

    done(await calls.app("removeAssociation", {"name": "friend", "obj_id1": "3", "obj_id2": "1"}))
    assert ok(await calls.app("getAssociatedObjects", {"name": "friend", "obj_id": "1"})) == []
    remove = {"name": "owns", "obj_id1": "1", "obj_ids": "[51, 52]"}  # 52: none, no error
    done(await calls.app("removeAssociations", remove))
    assert ok(await calls.app("getAssociatedObjectCount", count)) == {"value": 1}
    done(await calls.app("removeAssociatedObjects", {"name": "owns", "obj_id": "1"}))
    owners = {"name": "owned_by", "obj_ids": "50,51"}
    assert ok(await calls.app("getAssociatedObjectCounts", owners)) == [{"value": 0}, {"value": 0}]
    done(await calls.app("renameAssociation", {"name": "follows", "new_name": "fans"}))
    done(await calls.app("undefineAssociation", {"name": "owned_by"}))  # and its inverse
    definitions = ok(await calls.app("getAssociationDefinitions"))
    assert [d["name"] for d in definitions] == ["fans", "friend"]


@pytest.mark.parametrize("value", UTF8_VALUES)
async def test_association_data_round_trips(calls: DataCalls, value: str) -> None:
    done(await calls.app("defineAssociation", {"name": "likes", "assoc_type": "1"}))
    link = {"name": "likes", "obj_id1": "1", "obj_id2": "2", "data": value}
    done(await calls.app("setAssociation", link, "GET"))
    found = await calls.app("getAssociatedObjects", {"name": "likes", "obj_id": "1"}, "GET")
    assert ok(found)[0]["data"] == value


async def test_association_errors(calls: DataCalls) -> None:
    done(await calls.app("defineAssociation", {"name": "likes", "assoc_type": "1"}))
    cases: list[tuple[str, dict[str, str], int, str | None]] = [
        ("defineAssociation", {"name": "likes", "assoc_type": "1"}, 804, "likes"),
        (
            "defineAssociation",
            {"name": "x", "assoc_type": "3", "inverse": "likes"},
            804,
            "likes",
        ),
        ("defineAssociation", {"name": "x", "assoc_type": "3"}, 100, "inverse"),
        ("defineAssociation", {"name": "x", "assoc_type": "3", "inverse": "x"}, 100, "inverse"),
        ("defineAssociation", {"name": "x", "assoc_type": "1", "inverse": "y"}, 100, "inverse"),
        ("defineAssociation", {"name": "x", "assoc_type": "4"}, 100, "assoc_type"),
        ("defineAssociation", {"name": "X", "assoc_type": "1"}, 100, "name"),
        (
            "defineAssociation",
            {"name": "x", "assoc_type": "1", "assoc_info1": '{"color": 1}'},
            100,
            "assoc_info1",
        ),
        (
            "defineAssociation",
            {"name": "x", "assoc_type": "1", "assoc_info2": '{"unique": "maybe"}'},
            100,
            "assoc_info2",
        ),
        ("undefineAssociation", {"name": "nope"}, 803, "nope"),
        ("renameAssociation", {"name": "nope", "new_name": "x"}, 803, None),
        ("renameAssociation", {"name": "likes", "new_name": "likes"}, 804, None),
        ("getAssociationDefinition", {"name": "nope"}, 803, None),
        ("setAssociation", {"name": "nope", "obj_id1": "1", "obj_id2": "2"}, 803, None),
        ("setAssociation", {"name": "likes", "obj_id1": "0", "obj_id2": "2"}, 100, "obj_id1"),
        ("setAssociation", {"name": "likes", "obj_id1": "1"}, 100, "obj_id2"),
        (
            "setAssociation",
            {"name": "likes", "obj_id1": "1", "obj_id2": "2", "data": "x" * 256},
            100,
            "data",
        ),
        (
            "setAssociation",
            {"name": "likes", "obj_id1": "1", "obj_id2": "2", "assoc_time": "-1"},
            100,
            "assoc_time",
        ),
        ("setAssociations", {"obj_id1": "1", "obj_ids": "2"}, 100, "name"),
        ("setAssociations", {"name": "likes", "obj_ids": "2"}, 100, "obj_id1"),
        ("setAssociations", {"name": "likes", "obj_id1": "1"}, 100, "obj_ids"),
        ("setAssociations", {"name": "likes", "obj_id1": "1", "obj_ids": "2,x"}, 100, "obj_ids"),
        ("setAssociations", {"name": "nope", "obj_id1": "1", "obj_ids": "2"}, 803, None),
        ("removeAssociation", {"name": "nope", "obj_id1": "1", "obj_id2": "2"}, 803, None),
        ("removeAssociations", {"name": "nope", "obj_id1": "1", "obj_ids": "2"}, 803, None),
        ("removeAssociations", {"name": "likes", "obj_id1": "1", "obj_ids": "0"}, 100, "obj_ids"),
        ("removeAssociatedObjects", {"name": "nope", "obj_id": "1"}, 803, None),
        ("getAssociatedObjects", {"name": "nope", "obj_id": "1"}, 803, None),
        ("getAssociatedObjects", {"name": "likes", "obj_id": "1", "no_data": "2"}, 100, None),
        ("getAssociatedObjectCount", {"name": "nope", "obj_id": "1"}, 803, None),
        ("getAssociatedObjectCounts", {"name": "nope", "obj_ids": "1"}, 803, None),
        ("getAssociations", {"obj_id1": "1"}, 100, "obj_id2"),
    ]
    for method, params, code, detail in cases:
        response = await calls.app(method, params)
        assert response.json().get("error_code") == code, (method, params, response.text)
        error(response, code, detail)
    # a refused setAssociations sets none: one of 9's new things is owned already
    thing = json.dumps({"unique": True})
    owns = {"name": "owns", "assoc_type": "3", "assoc_info2": thing, "inverse": "owned_by"}
    done(await calls.app("defineAssociation", owns))
    done(await calls.app("setAssociation", {"name": "owns", "obj_id1": "1", "obj_id2": "50"}))
    refused = {"name": "owns", "obj_id1": "9", "obj_ids": "60,50,70"}
    error(await calls.app("setAssociations", refused), 804, "50")
    assert ok(await calls.app("getAssociatedObjects", {"name": "owns", "obj_id": "9"})) == []
    owners = {"name": "owned_by", "obj_ids": "60,50,70"}
    assert ok(await calls.app("getAssociatedObjectCounts", owners)) == [
        {"value": 0},
        {"value": 1},
        {"value": 0},
    ]


# --- quota, apps apart, 800 ----------------------------------------------------


async def test_quota_802_and_deletes_give_bytes_back(calls: DataCalls, world: World) -> None:
    await book_type(calls)
    await world.configure(storage_quota_bytes=1000)
    body = json.dumps({"body": "x" * 300})
    created = []
    while True:
        response = await calls.app("createObject", {"obj_type": "book", "properties": body})
        if response.json().get("error_code") == 802:
            break
        created.append(ok(response)["obj_id"])
    assert len(created) >= 1
    error(response, 802, "1000")
    big = {"obj_type": "book", "key": "k", "prop_name": "body", "value": "x" * 400}
    error(await calls.app("setHashValue", big), 802)
    done(await calls.app("deleteObject", {"obj_id": str(created[0])}))
    ok(await calls.app("createObject", {"obj_type": "book", "properties": body}))
    error(await calls.app("createObject", {"obj_type": "book", "properties": body}), 802)


async def test_quota_is_exact_with_50_parallel_writers_at_the_edge(
    calls: DataCalls, world: World
) -> None:
    """Each write costs 16 (the object) + 16 + 10 (its value) bytes; the quota
    leaves room for exactly 7 more: 7 of 50 parallel writers succeed."""
    await book_type(calls)
    probe = ok(await calls.app("createObject", {"obj_type": "book"}))["obj_id"]
    done(await calls.app("deleteObject", {"obj_id": str(probe)}))
    definitions = 16 + 4 + (16 + 5) + (16 + 5) + (16 + 4)  # the type and its properties
    cost = 16 + 16 + 10
    await world.configure(storage_quota_bytes=definitions + 7 * cost + cost - 1)
    new = {"obj_type": "book", "properties": json.dumps({"title": "0123456789"})}
    responses = await calls.parallel(50, "createObject", new)
    codes = sorted(int(r.headers["X-Error-Code"]) for r in responses)
    assert codes == [0] * 7 + [802] * 43
    created = [ok(r)["obj_id"] for r in responses if r.status_code == 200]
    done(await calls.app("deleteObjects", {"obj_ids": json.dumps(created[:2])}))
    again = await calls.parallel(10, "createObject", new)
    assert sorted(int(r.headers["X-Error-Code"]) for r in again) == [0] * 2 + [802] * 8


async def test_two_apps_with_the_same_names_and_ids_stay_apart(calls: DataCalls) -> None:
    world = calls.world
    other_app = await world.services.database.apps.create(
        AppSettings(name="Other app", scopes=("basic", "data"))
    )
    other = DataCalls(
        world,
        ApiClient(world.client.http, api_key=other_app.api_key, secret=other_app.secret),
        await issue(world.services.database, other_app, world.alice, "basic data"),
    )
    for side, label in ((calls, "first"), (other, "second")):
        await book_type(side)
        props = json.dumps({"title": label})
        assert ok(await side.app("createObject", {"obj_type": "book", "properties": props})) == {
            "obj_id": 1
        }
        hash_params = {"obj_type": "book", "key": "k", "prop_name": "title", "value": label}
        done(await side.app("setHashValue", hash_params))
        done(await side.user("setUserPreference", {"pref_id": "1", "value": label}))
        done(await side.app("defineAssociation", {"name": "likes", "assoc_type": "1"}))
        link = {"name": "likes", "obj_id1": "1", "obj_id2": "2", "data": label}
        done(await side.app("setAssociation", link))
    for side, label in ((calls, "first"), (other, "second")):
        assert ok(await side.app("getObject", {"obj_id": "1"}))["title"] == label
        hash_params = {"obj_type": "book", "key": "k", "prop_name": "title"}
        assert ok(await side.app("getHashValue", hash_params)) == {"value": label}
        assert ok(await side.user("getUserPreference", {"pref_id": "1"})) == {"value": label}
        between = {"obj_id1": "1", "obj_id2": "2"}
        assert [a["data"] for a in ok(await side.app("getAssociations", between))] == [label]
    done(await calls.app("dropObjectType", {"obj_type": "book"}))
    error(await calls.app("getObject", {"obj_id": "1"}), 803)
    assert ok(await other.app("getObjectTypes")) == [{"name": "book"}]
    assert ok(await other.app("getObject", {"obj_id": "1"}))["title"] == "second"


async def test_800_for_anything_unexpected_in_the_store(
    calls: DataCalls, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored definition the store cannot read (damaged outside the API) is
    800 with the request id; the traceback is in the server log only."""
    done(await calls.app("defineAssociation", {"name": "likes", "assoc_type": "1"}))
    async with calls.world.services.database.sessions.write() as session:
        await session.execute(update(DataAssociationDefinition).values(assoc_info1="not json"))
    with caplog.at_level(logging.ERROR, "openplatform.methods.data"):
        response = await calls.app("getAssociationDefinitions")
    body = error(response, 800)
    assert response.headers["X-Request-Id"] in body["error_detail"]
    assert "Traceback" not in response.text and "JSONDecodeError" not in response.text
    assert "Traceback" in caplog.text or caplog.records[0].exc_info is not None
