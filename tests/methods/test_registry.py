"""The declarative method registry: typed parameters with limits, and the
registry listing itself."""

from __future__ import annotations

import pytest

from openplatform.errors import ApiError, Code
from openplatform.methods import default_registry
from openplatform.methods.registry import MethodCall, MethodRegistry, MethodSpec, Param, ParamType


async def _noop(call: MethodCall) -> object:
    return None


def parsed(param: Param, text: str) -> object:
    return param.parse(text)


def refused(param: Param, text: str) -> int:
    with pytest.raises(ApiError) as caught:
        param.parse(text)
    return int(caught.value.code)


def test_int_with_bounds() -> None:
    p = Param("n", ParamType.INT, min_value=0, max_value=200)
    assert parsed(p, "7") == 7
    assert refused(p, "201") == refused(p, "-1") == refused(p, "x") == refused(p, "1.0") == 100


def test_bool() -> None:
    p = Param("b", ParamType.BOOL)
    assert [parsed(p, t) for t in ("true", "1", "FALSE", "0")] == [True, True, False, False]
    assert refused(p, "yes") == 100


def test_lists_as_json_or_comma() -> None:
    ints = Param("ids", ParamType.INT_LIST, max_items=3, invalid_code=Code.INVALID_USER_ID)
    assert parsed(ints, "1,2,3") == [1, 2, 3]
    assert parsed(ints, "[1, 2]") == [1, 2]
    assert refused(ints, "1,x") == 108
    assert refused(ints, "[1, true]") == 108
    assert refused(ints, "1,2,3,4") == 100  # too many is the request's fault
    strs = Param("names", ParamType.STR_LIST)
    assert parsed(strs, '["a", "b c"]') == ["a", "b c"]
    assert parsed(strs, "a, b") == ["a", "b"]
    assert parsed(strs, "") == []


def test_json() -> None:
    p = Param("v", ParamType.JSON)
    assert parsed(p, '{"a": [1]}') == {"a": [1]}
    assert refused(p, "{") == 100


def test_json_object_and_array() -> None:
    obj = Param("properties", ParamType.JSON_OBJECT)
    assert parsed(obj, '{"title": "你好", "n": 1}') == {"title": "你好", "n": 1}
    assert refused(obj, "[1]") == refused(obj, '"x"') == refused(obj, "{") == 100
    arr = Param("assocs", ParamType.JSON_ARRAY, max_items=2)
    assert parsed(arr, '[{"id1": 1}]') == [{"id1": 1}]
    assert refused(arr, "{}") == refused(arr, "[1, 2, 3]") == 100


def test_names() -> None:
    name = Param("obj_type", ParamType.NAME)
    assert parsed(name, "book_2") == "book_2"
    for bad in ("", "Book", "2book", "_x", "a-b", "a" * 33, "ü"):
        assert refused(name, bad) == 100, bad
    with pytest.raises(ApiError, match="obj_type"):
        name.parse("Book")
    names = Param("prop_names", ParamType.NAME_LIST, max_items=2)
    assert parsed(names, "a,b") == parsed(names, '["a", "b"]') == ["a", "b"]
    assert refused(names, "a,B") == refused(names, "a,b,c") == 100


def test_parse_arguments_required_and_typed() -> None:
    spec = MethodSpec("t.m", _noop, params=(Param("a", ParamType.INT, required=True), Param("b")))
    args = spec.parse_arguments({"a": "5", "ignored": "x"})
    assert args.get_int("a") == 5
    assert args.get_str("b") is None
    with pytest.raises(ApiError) as caught:
        spec.parse_arguments({"b": "x"})
    assert caught.value.code == Code.INVALID_PARAMETER


def test_permission() -> None:
    spec = MethodSpec("t.m", _noop, scope="data", needs_user=True)
    with pytest.raises(ApiError) as caught:
        spec.check_permission(None, frozenset())
    assert caught.value.code == Code.NO_PERMISSION_USER_DATA
    with pytest.raises(ApiError):
        spec.check_permission(1, frozenset({"basic"}))
    spec.check_permission(1, frozenset({"basic", "data"}))
    # app-only calls are not subject to a user scope
    MethodSpec("t.n", _noop, scope="data").check_permission(None, frozenset())


def test_registry_refuses_duplicates_and_lists_itself() -> None:
    registry = MethodRegistry((MethodSpec("b.x", _noop), MethodSpec("a.y", _noop)))
    with pytest.raises(ValueError, match="twice"):
        registry.register(MethodSpec("a.y", _noop))
    assert [spec["name"] for spec in registry.describe()] == ["a.y", "b.x"]


def test_default_registry_describes_the_methods_of_protocol_4() -> None:
    described = {spec["name"]: spec for spec in default_registry().describe()}
    assert {
        "users.getInfo",
        "users.getLoggedInUser",
        "users.hasAppPermission",
        "users.isAppUser",
        "application.getPublicInfo",
    } <= set(described)
    info = described["users.getInfo"]
    params = {p["name"]: p for p in info["params"]}  # type: ignore[attr-defined]
    assert params["uids"]["max_items"] == 100
    assert params["uids"]["type"] == "integer list"
    assert described["users.getLoggedInUser"]["needs_user"] is True
    assert all(isinstance(spec["batchable"], bool) for spec in described.values())


def test_xml_root() -> None:
    assert MethodSpec("users.getInfo", _noop).xml_root == "users_getInfo_response"


def test_ints_without_declared_bounds_still_fit_64_bits() -> None:
    """A 19-digit uid past 2**63-1 once reached the database (code 1)."""
    uid = Param("uid", ParamType.INT, min_value=1, invalid_code=Code.INVALID_USER_ID)
    assert parsed(uid, str(2**63 - 1)) == 2**63 - 1
    assert refused(uid, str(2**63)) == refused(uid, "9" * 19) == 108
    assert refused(Param("n", ParamType.INT), str(-(2**63) - 1)) == 100
