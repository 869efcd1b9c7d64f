"""Responses (PROTOCOL §3.4): JSON and XML (parsed back with an XML parser),
messages in zh and en exactly as in the catalogue."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from openplatform.errors import entry
from tests.gateway.world import CLIENT_IP, World

ME = "users.getLoggedInUser"


async def test_xml_result_parses(world: World) -> None:
    r = await world.client.call(
        "users.getInfo",
        {"uids": f"{world.alice.uid},{world.alice.uid}", "fields": "username", "format": "xml"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    assert r.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(r.content)
    assert root.tag == "users_getInfo_response"
    items = root.findall("item")
    assert [item.findtext("username") for item in items] == ["alice", "alice"]
    assert [item.findtext("uid") for item in items] == [str(world.alice.uid)] * 2


async def test_xml_dict_result_and_booleans(world: World) -> None:
    r = await world.client.call("users.isAppUser", {"uid": str(world.alice.uid), "format": "xml"})
    root = ET.fromstring(r.content)
    assert root.tag == "users_isAppUser_response"
    assert root.findtext("result") == "true"


async def test_xml_error_parses_with_request_args(world: World) -> None:
    r = await world.client.call(
        ME, {"format": "xml", "note": "<&>\"' 你好\x01"}, secret="wrong-secret"
    )
    assert r.status_code == 401
    assert r.headers["X-Error-Code"] == "104"
    root = ET.fromstring(r.content)
    assert root.tag == "error_response"
    assert root.findtext("error_code") == "104"
    assert root.findtext("error_msg") == entry(104).en
    args = {arg.findtext("key"): arg.findtext("value") for arg in root.findall("request_args/arg")}
    assert args["api_key"] == world.app.api_key
    assert args["sig"] == "***"
    assert args["note"] == "<&>\"' 你好\ufffd"  # XML cannot carry U+0001


async def test_format_is_honoured_for_early_errors(world: World) -> None:
    r = await world.client.raw("/rest/2.0/nope.nope", {"format": "xml"})
    root = ET.fromstring(r.content)
    assert root.findtext("error_code") == "3"


@pytest.mark.parametrize(
    ("code", "params"),
    [
        (3, {"method": "x.y"}),
        (101, {}),
        (104, {"sig": "bad"}),
        (106, {"sig": "bad", "sign_method": "rot13"}),
        (105, {f"p{i}": "1" for i in range(60)}),
        (114, {"client_ip": "999.0.0.1"}),
    ],
)
@pytest.mark.parametrize("lang", ["zh", "en"])
async def test_messages_equal_the_catalogue(
    world: World, code: int, params: dict[str, str], lang: str
) -> None:
    base = {"api_key": world.app.api_key if code != 101 else "ak_unknown", "lang": lang}
    path = "/rest/2.0/" if code == 3 else f"/rest/2.0/{ME}"
    r = await world.client.raw(path, {**base, **params})
    body = r.json()
    assert body["error_code"] == code
    assert body["error_msg"] == entry(code).message("zh" if lang == "zh" else "en", CLIENT_IP)


async def test_zh_ip_message(world: World) -> None:
    await world.configure(ip_allowlist=["198.51.100.1"])
    r = await world.client.call(ME, {"lang": "zh"})
    assert r.json()["error_msg"] == "请求来自未经授权的IP地址"


async def test_success_headers(world: World) -> None:
    r = await world.client.call(ME, {"access_token": world.alice_basic.access_token})
    assert r.headers["X-Error-Code"] == "0"
    assert r.headers["X-RateLimit-Limit"] == "10000"
    assert int(r.headers["X-RateLimit-Remaining"]) == 9999
