"""Hostile values for every declared parameter of every registered method
(issue 12, hostile input), through the real pipeline, signed, on SQLite +
memory and PostgreSQL + Redis: each answer is 0 or a code the method
declares (PROTOCOL §3.3 check 14, §4) — a value over its declared length is
100 naming the parameter — and never 1, 800 or 805 (something unexpected
inside). Afterwards the data written before is intact and a normal call works."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from openplatform.errors import CATALOGUE, Code
from openplatform.methods import default_registry
from openplatform.methods.registry import NAME_PATTERN, MethodSpec, Param, ParamType
from openplatform.storage.models import Base
from tests.gateway.world import World, backends, gateway_database_url, shared_state, world
from tests.methods.data_calls import DataCalls, done, ok

__all__ = ["backends", "gateway_database_url", "shared_state", "world"]  # fixtures

SPECS = list(default_registry())
# What no parameter may ever cause: an unexpected error, inside or in the store.
NEVER = {Code.UNKNOWN, Code.DATA_STORE_UNKNOWN, Code.DATABASE_ERROR}

HOSTILE = [
    "",
    " ",
    "'; DROP TABLE users; --",
    "1; DELETE FROM apps",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "a\x00b",
    "\x00",
    "%00",
    "😀" * 20,
    "\u202e\u0000\ufeff",
    "\r\nX-Injected: 1",
    "<x>&amp;</x>",
    "-1",
    "0",
    "9" * 19,
    "-" + "9" * 19,
    "18446744073709551616",
    "1e3",
    "0x10",
    "١٢٣",  # Arabic-Indic digits
    "[",
    "{",
    "[]",
    "{}",
    "null",
    '[1, "a", null, {"b": [true]}]',
    '{"a": {"b": {"c": [1e400]}}}',
    '{"\\u0000": "\\u0000"}',
    "[" * 5000 + "]" * 5000,
    "1,,2",
    ",",
    "true",
]


def _default(param: Param) -> str:
    """A well-formed value, naming what the fixture creates."""
    kind = param.type
    if kind is ParamType.INT:
        return str(max(param.min_value or 1, 1) if param.max_value != 3 else 2)
    if kind is ParamType.BOOL:
        return "true"
    if kind is ParamType.NAME:
        return "book"
    if kind in (ParamType.INT_LIST, ParamType.STR_LIST):
        return "1"
    if kind is ParamType.NAME_LIST:
        return "title"
    if kind is ParamType.JSON_OBJECT:
        return '{"title": "x"}'
    if kind is ParamType.JSON_ARRAY:
        return "[]"
    if kind is ParamType.JSON:
        return '"x"'
    if param.name == "method_feed":
        return '["method=users.getInfo&uids=1&fields=uid"]'
    return "x"


def _allowed(spec: MethodSpec) -> set[int]:
    return {0, Code.INVALID_PARAMETER, *spec.error_codes()}


@pytest.fixture
async def calls(world: World) -> DataCalls:
    """A user session with the ``data`` scope; a type ``book`` (title, pages,
    body), its object 1 and an association ``likes``."""
    await world.configure(scopes=["basic", "email", "mobile", "data"])
    calls = DataCalls(world, world.client, await world.issue(world.alice, "basic data"))
    done(await calls.app("createObjectType", {"name": "book"}))
    for prop_name, prop_type in (("title", "2"), ("pages", "1"), ("body", "3")):
        params = {"obj_type": "book", "prop_name": prop_name, "prop_type": prop_type}
        done(await calls.app("defineObjectProperty", params))
    created = ok(
        await calls.app("createObject", {"obj_type": "book", "properties": '{"pages": 7}'})
    )
    assert created == {"obj_id": 1}
    done(await calls.app("defineAssociation", {"name": "likes", "assoc_type": "1"}))
    return calls


async def _call(calls: DataCalls, spec: MethodSpec, params: dict[str, str]) -> httpx.Response:
    tokens = calls.user_tokens
    return await calls.client.call(
        spec.name, params, session_key=tokens.session_key, secret=tokens.session_secret
    )


def _judge(spec: MethodSpec, params: dict[str, str], response: httpx.Response) -> int:
    """The code answered, checked; a 100 names the parameter it is about."""
    assert "Traceback" not in response.text
    body: Any = response.json()
    code = body.get("error_code", 0) if isinstance(body, dict) else 0
    assert code in CATALOGUE, (spec.name, params, body)
    assert int(response.headers["X-Error-Code"]) == code
    assert code not in NEVER, (spec.name, params, body)
    assert code in _allowed(spec), (spec.name, params, body)
    if code == Code.INVALID_PARAMETER:
        # a list parameter's item may be named singly ("keys": "key: …")
        named = {param.name.removesuffix("s") for param in spec.params}
        assert any(name in body["error_detail"] for name in named), (spec.name, params, body)
    return int(code)


async def _still_healthy(calls: DataCalls) -> None:
    """Only well-formed names were stored, and the store works as before."""
    for described in ok(await calls.app("getObjectTypes")):
        assert NAME_PATTERN.fullmatch(described["name"]), described
        for prop in ok(await calls.app("getObjectType", {"obj_type": described["name"]})):
            assert NAME_PATTERN.fullmatch(prop["name"]), prop
    done(await calls.app("createObjectType", {"name": "canary"}))
    params = {"obj_type": "canary", "prop_name": "note", "prop_type": "2"}
    done(await calls.app("defineObjectProperty", params))
    properties = '{"note": "\'; DROP TABLE users; --"}'
    created = ok(await calls.app("createObject", {"obj_type": "canary", "properties": properties}))
    got = ok(await calls.app("getObject", {"obj_id": str(created["obj_id"])}))
    assert got == {"obj_id": created["obj_id"], "note": "'; DROP TABLE users; --"}
    ok(await calls.world.client.call("users.getInfo", {"uids": "1", "fields": "uid"}))


async def test_hostile_values_for_every_declared_parameter(calls: DataCalls) -> None:
    seen: set[tuple[str, str]] = set()
    for spec in SPECS:
        base = {p.name: _default(p) for p in spec.params if p.required}
        for param in spec.params:
            too_long = "7" * (param.max_length + 1)
            for value in [*HOSTILE, too_long]:
                params = {**base, param.name: value}
                response = await _call(calls, spec, params)
                code = _judge(spec, params, response)
                if value is too_long:
                    assert code == Code.INVALID_PARAMETER
                    assert response.json()["error_detail"].startswith(param.name)
                seen.add((spec.name, param.name))
    assert seen == {(s.name, p.name) for s in SPECS for p in s.params}
    await _still_healthy(calls)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_values = st.one_of(
    _text,
    st.sampled_from(HOSTILE),
    st.integers(-(2**70), 2**70).map(str),
    st.lists(st.one_of(st.integers(-(2**65), 2**65), _text, st.none()), max_size=5).map(
        lambda items: str(items).replace("'", '"').replace("None", "null")
    ),
    st.dictionaries(_text, st.one_of(_text, st.integers(-(2**65), 2**65)), max_size=4).map(
        lambda d: str(d).replace("'", '"')
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_random_values_for_random_methods(calls: DataCalls, data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(SPECS), label="method")
    params: dict[str, str] = {}
    for param in spec.params:
        if param.required or data.draw(st.booleans()):
            params[param.name] = data.draw(_values, label=param.name)
    _judge(spec, params, await _call(calls, spec, params))


SQLISH_AND_PATHISH = [
    "'; DROP TABLE data_objects; --",
    'book" OR "1"="1',
    "book; DELETE FROM apps",
    "../../etc/passwd",
    "..\\..\\boot.ini",
    "/dev/null",
    "%00",
    "book%00",
    "\x00",
    "😀 book",
    "Book",
    "b" * 33,
]


async def test_sql_and_path_names_in_the_data_store(calls: DataCalls) -> None:
    """As names of types, properties and associations they are 100 naming
    the parameter; as hash keys and string values they are stored and
    returned verbatim (a NUL, which no database column holds, is 100); the
    tables are all there afterwards."""
    for name in SQLISH_AND_PATHISH:
        for method, params, named in [
            ("createObjectType", {"name": name}, "name"),
            ("renameObjectType", {"obj_type": "book", "new_name": name}, "new_name"),
            (
                "defineObjectProperty",
                {"obj_type": "book", "prop_name": name, "prop_type": "2"},
                "prop_name",
            ),
            ("defineAssociation", {"name": name, "assoc_type": "1"}, "name"),
            ("getObjectType", {"obj_type": name}, "obj_type"),
        ]:
            body = (await calls.app(method, params)).json()
            assert body["error_code"] == 100, (method, name, body)
            assert body["error_detail"].startswith(named), body
        set_value = {"obj_type": "book", "key": name, "prop_name": "title", "value": name}
        stored = await calls.app("setHashValue", set_value)
        got = await calls.app(
            "getHashValue", {"obj_type": "book", "key": name, "prop_name": "title"}
        )
        created = await calls.app(
            "createObject",
            {"obj_type": "book", "properties": orjson.dumps({"title": name}).decode()},
        )
        if "\x00" in name:
            for refused in (stored, got, created):
                assert refused.json()["error_code"] == 100, refused.text
            continue
        done(stored)
        assert ok(got) == {"value": name}
        obj_id = ok(created)["obj_id"]
        assert ok(await calls.app("getObject", {"obj_id": str(obj_id)}))["title"] == name
    too_long = {"obj_type": "book", "key": "k" * 256, "prop_name": "title", "value": "x"}
    assert (await calls.app("setHashValue", too_long)).json()["error_code"] == 100
    assert [t["name"] for t in ok(await calls.app("getObjectTypes"))] == ["book"]
    async with calls.world.services.database.sessions.read() as session:
        for table in Base.metadata.sorted_tables:
            await session.execute(select(func.count()).select_from(table))
    await _still_healthy(calls)
