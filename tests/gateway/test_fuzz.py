"""PROTOCOL §1: no input, however malformed, yields a stack trace, a 500
without code 1, or a hang. Random parameter sets, raw query strings and
bodies, signed or not, against the real pipeline."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from urllib.parse import quote_from_bytes

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openplatform.gateway.signature import sign
from tests.gateway.world import World

COMMON = [
    "method",
    "api_key",
    "access_token",
    "session_key",
    "sig",
    "sign_method",
    "timestamp",
    "call_id",
    "v",
    "format",
    "lang",
    "client_ip",
    "uids",
    "fields",
    "uid",
    "ext_perm",
    "application_id",
    "application_api_key",
]
METHODS = [
    "users.getInfo",
    "users.getLoggedInUser",
    "users.hasAppPermission",
    "users.isAppUser",
    "application.getPublicInfo",
    "users",
    "",
    "a/b/c",
    "..",
]
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_values = st.one_of(
    _text,
    st.sampled_from(["", "0", "-1", "1,2,3", "[1,2]", "xml", "json", "zh", "md5", "2.0", "::1"]),
    st.integers(-(10**20), 10**20).map(str),
)
_params = st.lists(st.tuples(st.one_of(st.sampled_from(COMMON), _text), _values), max_size=12)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def send(
    world: World,
    method: str,
    path: str,
    query: bytes,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, bytes]:
    """One raw ASGI request, bounded in time."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": headers or [(b"content-type", b"application/x-www-form-urlencoded")],
        "client": ("192.0.2.10", 1234),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, object]] = []
    delivered = False

    async def receive() -> dict[str, object]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send_message(message: dict[str, object]) -> None:
        sent.append(message)

    await asyncio.wait_for(world.asgi(scope, receive, send_message), timeout=10)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(
        m.get("body", b"")
        for m in sent
        if m["type"] == "http.response.body"  # type: ignore[misc]
    )
    status = start["status"]
    assert isinstance(status, int)
    return status, payload


def assert_clean(status: int, payload: bytes) -> None:
    text = payload.decode("utf-8")
    assert "Traceback" not in text
    if payload.startswith(b"<?xml"):
        root = ET.fromstring(payload)
        code = int(root.findtext("error_code") or "0")
    else:
        body = orjson.loads(payload)
        code = body.get("error_code", 0) if isinstance(body, dict) else 0
    assert code != 1, text  # nothing unexpected happened inside
    assert status != 500 or code == 1


def encode(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(
        f"{quote_from_bytes(k.encode())}={quote_from_bytes(v.encode())}" for k, v in pairs
    ).encode()


@FUZZ
@given(
    pairs=_params,
    method=st.sampled_from(METHODS),
    http=st.sampled_from(["GET", "POST"]),
    signed=st.booleans(),
)
async def test_random_parameter_sets(
    world: World, pairs: list[tuple[str, str]], method: str, http: str, signed: bool
) -> None:
    if signed:
        pairs = [("api_key", world.app.api_key), ("timestamp", str(int(time.time()))), *pairs]
        pairs.append(("sig", sign([*pairs, ("method", method)], world.app.secret)))
    encoded = encode(pairs)
    query, body = (encoded, b"") if http == "GET" else (b"", encoded)
    status, payload = await send(world, http, f"/rest/2.0/{method}", query, body)
    assert_clean(status, payload)


@FUZZ
@given(query=st.binary(max_size=200), body=st.binary(max_size=200), method=st.sampled_from(METHODS))
async def test_raw_bytes(world: World, query: bytes, body: bytes, method: str) -> None:
    status, payload = await send(world, "POST", f"/rest/2.0/{method}", query, body)
    assert_clean(status, payload)


async def test_a_body_cut_off_runs_nothing_and_is_answered_100(world: World) -> None:
    """The client went away, or its framing broke (Granian reports a broken
    chunked body as a disconnect, and answered 500 itself when the app sent
    nothing): nothing runs on part of a body; 100 to whoever is still there."""
    messages = iter(
        [
            {"type": "http.request", "body": b"api_key=k&uids=1", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[object] = []

    async def receive() -> object:
        return next(messages)

    async def send_message(message: object) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/rest/2.0/users.getInfo",
        "query_string": b"",
        "headers": [],
        "client": ("192.0.2.10", 1),
    }
    await world.asgi(scope, receive, send_message)  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 400  # type: ignore[index]
    answer = orjson.loads(body["body"])  # type: ignore[index]
    assert (answer["error_code"], answer["error_detail"]) == (100, "the request body was cut off")


async def test_non_ascii_content_length_is_100(world: World) -> None:
    status, payload = await send(
        world, "POST", "/rest/2.0/users.getInfo", b"", b"", [(b"content-length", "²".encode())]
    )
    assert status == 400
    assert orjson.loads(payload)["error_code"] == 100
