"""Every data-store method of PROTOCOL §4: the request it sends (method and
parameters under PROTOCOL's exact names) and how its result is read. Against
a fake gateway until the server has ``data.*``."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from openplatform_client import (
    IDEMPOTENT_METHODS,
    AssociatedObject,
    AssociationDefinition,
    AssociationType,
    Client,
    PropertyDefinition,
    PropertyType,
)
from openplatform_client._methods import Data
from tests.client.fake_gateway import API_KEY, BASE_URL, SECRET, FakeGateway, answer

COMMON = {"api_key", "timestamp", "call_id", "sig", "sign_method", "lang", "access_token"}
ACK = {"result": True}

Case = tuple[Callable[[Any], object], str, dict[str, str], object, object]

CASES: list[Case] = [
    # preferences
    (lambda d: d.get_user_preference(7), "data.getUserPreference", {"pref_id": "7"},
     {"value": "blue"}, "blue"),
    (lambda d: d.set_user_preference(7, "你好 world+1&="), "data.setUserPreference",
     {"pref_id": "7", "value": "你好 world+1&="}, ACK, None),
    (lambda d: d.get_user_preferences(), "data.getUserPreferences", {},
     [{"pref_id": 1, "value": "a"}, {"pref_id": 200, "value": "b"}], {1: "a", 200: "b"}),
    (lambda d: d.set_user_preferences({1: "a", 2: ""}, replace=True), "data.setUserPreferences",
     {"values": '{"1":"a","2":""}', "replace": "true"}, ACK, None),
    # object types and properties
    (lambda d: d.create_object_type("note"), "data.createObjectType", {"name": "note"}, ACK, None),
    (lambda d: d.drop_object_type("note"), "data.dropObjectType", {"obj_type": "note"}, ACK, None),
    (lambda d: d.rename_object_type("note", "memo"), "data.renameObjectType",
     {"obj_type": "note", "new_name": "memo"}, ACK, None),
    (lambda d: d.define_object_property("note", "text", PropertyType.TEXT),
     "data.defineObjectProperty", {"obj_type": "note", "prop_name": "text", "prop_type": "3"},
     ACK, None),
    (lambda d: d.undefine_object_property("note", "text"), "data.undefineObjectProperty",
     {"obj_type": "note", "prop_name": "text"}, ACK, None),
    (lambda d: d.rename_object_property("note", "text", "body"), "data.renameObjectProperty",
     {"obj_type": "note", "prop_name": "text", "new_name": "body"}, ACK, None),
    (lambda d: d.get_object_types(), "data.getObjectTypes", {},
     [{"name": "note"}, {"name": "counter"}], ["note", "counter"]),
    (lambda d: d.get_object_type("note"), "data.getObjectType", {"obj_type": "note"},
     [{"name": "text", "prop_type": 3}, {"name": "n", "prop_type": 1}],
     [PropertyDefinition("text", PropertyType.TEXT),
      PropertyDefinition("n", PropertyType.INTEGER)]),
    # objects
    (lambda d: d.create_object("note", {"text": "hi", "n": 1}), "data.createObject",
     {"obj_type": "note", "properties": '{"text":"hi","n":1}'}, {"obj_id": 12}, 12),
    (lambda d: d.update_object(12, {"n": 2}), "data.updateObject",
     {"obj_id": "12", "properties": '{"n":2}', "replace": "false"}, ACK, None),
    (lambda d: d.delete_object(12), "data.deleteObject", {"obj_id": "12"}, ACK, None),
    (lambda d: d.delete_objects([12, 13]), "data.deleteObjects", {"obj_ids": "12,13"}, ACK, None),
    (lambda d: d.get_object(12, prop_names=["text"]), "data.getObject",
     {"obj_id": "12", "prop_names": "text"}, {"obj_id": 12, "text": "hi"},
     {"obj_id": 12, "text": "hi"}),
    (lambda d: d.get_objects([12, 13]), "data.getObjects", {"obj_ids": "12,13"},
     [{"obj_id": 12}, {"obj_id": 13}], [{"obj_id": 12}, {"obj_id": 13}]),
    (lambda d: d.get_object_property(12, "n"), "data.getObjectProperty",
     {"obj_id": "12", "prop_name": "n"}, {"value": 2}, 2),
    (lambda d: d.set_object_property(12, "text", "bye"), "data.setObjectProperty",
     {"obj_id": "12", "prop_name": "text", "prop_value": "bye"}, ACK, None),
    # hash keys
    (lambda d: d.get_hash_value("counter", "home", "n"), "data.getHashValue",
     {"obj_type": "counter", "key": "home", "prop_name": "n"}, {"value": ""}, ""),
    (lambda d: d.set_hash_value("counter", "home", 5, "n"), "data.setHashValue",
     {"obj_type": "counter", "key": "home", "value": "5", "prop_name": "n"}, ACK, None),
    (lambda d: d.inc_hash_value("counter", "home", "n", increment=3), "data.incHashValue",
     {"obj_type": "counter", "key": "home", "prop_name": "n", "increment": "3"}, {"value": 8}, 8),
    (lambda d: d.remove_hash_key("counter", "home"), "data.removeHashKey",
     {"obj_type": "counter", "key": "home"}, ACK, None),
    (lambda d: d.remove_hash_keys("counter", ["a", "b,c"]), "data.removeHashKeys",
     {"obj_type": "counter", "keys": '["a","b,c"]'}, ACK, None),
    # associations
    (lambda d: d.define_association("friends", AssociationType.TWO_WAY_SYMMETRIC,
                                    {"alias": "u1", "object_type": "user"}, "u2"),
     "data.defineAssociation",
     {"name": "friends", "assoc_type": "2", "assoc_info1": '{"alias":"u1","object_type":"user"}',
      "assoc_info2": "u2"}, ACK, None),
    (lambda d: d.undefine_association("friends"), "data.undefineAssociation",
     {"name": "friends"}, ACK, None),
    (lambda d: d.rename_association("friends", "pals"), "data.renameAssociation",
     {"name": "friends", "new_name": "pals"}, ACK, None),
    (lambda d: d.get_association_definition("likes"), "data.getAssociationDefinition",
     {"name": "likes"},
     {"name": "likes", "assoc_type": 3, "assoc_info1": "a", "assoc_info2": "b",
      "inverse": "liked_by"},
     AssociationDefinition("likes", AssociationType.TWO_WAY_ASYMMETRIC, "a", "b", "liked_by")),
    (lambda d: d.get_association_definitions(), "data.getAssociationDefinitions", {},
     [{"name": "f", "assoc_type": 1, "assoc_info1": "a", "assoc_info2": "b", "inverse": ""}],
     [AssociationDefinition("f", AssociationType.ONE_WAY, "a", "b", None)]),
    (lambda d: d.set_association("likes", 1, 2, data="since 2020", assoc_time=1700000000),
     "data.setAssociation",
     {"name": "likes", "obj_id1": "1", "obj_id2": "2", "data": "since 2020",
      "assoc_time": "1700000000"}, ACK, None),
    (lambda d: d.set_associations("likes", 1, [2, 3]), "data.setAssociations",
     {"name": "likes", "obj_id1": "1", "obj_ids": "2,3"}, ACK, None),
    (lambda d: d.remove_association("likes", 1, 2), "data.removeAssociation",
     {"name": "likes", "obj_id1": "1", "obj_id2": "2"}, ACK, None),
    (lambda d: d.remove_associations("likes", 1, [2, 3]), "data.removeAssociations",
     {"name": "likes", "obj_id1": "1", "obj_ids": "2,3"}, ACK, None),
    (lambda d: d.remove_associated_objects("likes", 1), "data.removeAssociatedObjects",
     {"name": "likes", "obj_id": "1"}, ACK, None),
    (lambda d: d.get_associated_objects("likes", 1, no_data=True), "data.getAssociatedObjects",
     {"name": "likes", "obj_id": "1", "no_data": "true"},
     [{"id2": 2, "data": "", "time": 1700000000}], [AssociatedObject(2, "", 1700000000)]),
    (lambda d: d.get_associated_object_count("likes", 1), "data.getAssociatedObjectCount",
     {"name": "likes", "obj_id": "1"}, {"value": 4}, 4),
    (lambda d: d.get_associated_object_counts("likes", [1, 2]), "data.getAssociatedObjectCounts",
     {"name": "likes", "obj_ids": "1,2"}, [{"value": 4}, {"value": 0}], [4, 0]),
    (lambda d: d.get_associations(1, 2), "data.getAssociations",
     {"obj_id1": "1", "obj_id2": "2", "no_data": "false"},
     [{"name": "likes", "id1": 1, "id2": 2, "data": "", "time": 1}],
     [{"name": "likes", "id1": 1, "id2": 2, "data": "", "time": 1}]),
]  # fmt: skip


@pytest.mark.parametrize(("invoke", "method", "params", "reply", "expected"), CASES,
                         ids=[case[1] for case in CASES])  # fmt: skip
def test_request_and_result(
    invoke: Callable[[Any], object],
    method: str,
    params: dict[str, str],
    reply: object,
    expected: object,
) -> None:
    fake = FakeGateway([answer(reply)])
    client = Client(
        API_KEY, SECRET, base_url=BASE_URL, http_client=httpx.Client(transport=fake.transport())
    )
    assert invoke(client.data) == expected
    (sent,) = fake.received
    assert sent.method == method
    assert {k: v for k, v in sent.params.items() if k not in COMMON} == params


def _protocol_data_methods() -> set[str]:
    """The data.* methods PROTOCOL §4 names, with ``(s)`` expanded."""
    text = (Path(__file__).resolve().parents[3] / "shared" / "PROTOCOL.md").read_text("utf-8")
    section = text[text.index("### data") : text.index("### batch")]
    names: set[str] = set()
    for word in re.findall(r"`(?:data\.)?([a-z][A-Za-z]+(?:\(s\))?)(?:\([^`]*\))?`", section):
        if word[0].islower() and any(c.isupper() for c in word):
            base = word.removesuffix("(s)")
            names.add(f"data.{base}")
            if word.endswith("(s)"):
                names.add(f"data.{base}s")
    return names


def test_every_data_method_of_the_protocol_has_a_typed_method() -> None:
    expected = {case[1] for case in CASES}
    protocol = _protocol_data_methods()
    assert len(protocol) == 39, sorted(protocol)
    assert protocol == expected
    typed = {
        name
        for name, value in vars(Data).items()
        if not name.startswith("_") and hasattr(value, "build")
    }
    assert len(typed) == len(protocol)


def test_idempotent_data_methods() -> None:
    """The retry rule's table: reads and set-to-a-value writes only."""
    data = {m for m in IDEMPOTENT_METHODS if m.startswith("data.")}
    assert {m for m in data if not m.startswith("data.get")} == {
        "data.setUserPreference",
        "data.setUserPreferences",
        "data.setObjectProperty",
        "data.setHashValue",
        "data.updateObject",
    }
    assert "data.incHashValue" not in IDEMPOTENT_METHODS
    assert "data.createObject" not in IDEMPOTENT_METHODS
    assert all(case[1] in IDEMPOTENT_METHODS for case in CASES if case[1].startswith("data.get"))
