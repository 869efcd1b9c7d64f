"""The one renderer: JSON and XML bodies, languages, redaction, headers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import orjson
import pytest

from openplatform.errors import ApiError, Code, OAuthError, entry
from openplatform.errors.render import (
    api_error_response,
    negotiate_lang,
    oauth_error_response,
    render_body,
    result_response,
)

ARGS = [
    ("method", "users.getInfo"),
    ("api_key", "ak_1"),
    ("sig", "abc"),
    ("access_token", "tok"),
    ("session_key", "sk"),
    ("client_secret", "cs"),
    ("password", "pw"),
    ("uids", "1,2"),
]
SECRETS = {"sig", "access_token", "session_key", "client_secret", "password"}


def test_json_error_body_and_headers() -> None:
    error = ApiError(Code.INCORRECT_SIGNATURE)
    response = api_error_response(
        error, lang="en", fmt="json", request_id="rid-1", request_args=ARGS
    )
    body = orjson.loads(response.body)
    assert response.status_code == 401
    assert response.headers["X-Error-Code"] == "104"
    assert response.headers["X-Request-Id"] == "rid-1"
    assert response.headers["content-type"] == "application/json"
    assert body["error_code"] == 104
    assert body["error_msg"] == "Incorrect signature"
    assert "error_detail" not in body
    args = {a["key"]: a["value"] for a in body["request_args"]}
    assert [a["key"] for a in body["request_args"]] == [k for k, _ in ARGS]
    for key in SECRETS:
        assert args[key] == "***"
    assert args["uids"] == "1,2"


def test_percent_s_filled_and_detail_added() -> None:
    error = ApiError(Code.UNAUTHORIZED_CLIENT_IP, "client IP 198.51.100.7", fill="198.51.100.7")
    response = api_error_response(error, lang="en", fmt="json", request_id="r")
    body = orjson.loads(response.body)
    assert body["error_msg"] == "Unauthorized client IP address:198.51.100.7"
    assert body["error_detail"] == "client IP 198.51.100.7"
    assert response.status_code == 403


@pytest.mark.parametrize("code", [c for c in Code if entry(c).family == "api" and c != 0])
def test_zh_messages_equal_the_catalogue(code: Code) -> None:
    response = api_error_response(ApiError(code), lang="zh", fmt="json", request_id="r")
    assert orjson.loads(response.body)["error_msg"] == entry(code).zh
    assert response.status_code == entry(code).http_status


def test_xml_error_parses_back() -> None:
    error = ApiError(Code.INVALID_TIMESTAMP, "server time 1700000000, window ±600 s")
    args = [*ARGS, ("note", "<&>\"' 你好 \x01")]
    response = api_error_response(error, lang="zh", fmt="xml", request_id="r", request_args=args)
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(response.body)
    assert root.tag == "error_response"
    assert root.findtext("error_code") == "107"
    assert root.findtext("error_msg") == entry(107).zh
    assert root.findtext("error_detail") == "server time 1700000000, window ±600 s"
    parsed = [(a.findtext("key"), a.findtext("value")) for a in root.iterfind("request_args/arg")]
    assert parsed[0] == ("method", "users.getInfo")
    assert dict(parsed)["sig"] == "***"
    assert dict(parsed)["note"] == "<&>\"' 你好 \ufffd"


def test_xml_result_uses_method_root_and_items() -> None:
    result = [{"uid": 1, "username": "a&b", "ok": True}, {"uid": 2, "username": None}]
    root = ET.fromstring(render_body(result, "xml", "users_getInfo_response"))
    assert root.tag == "users_getInfo_response"
    items = root.findall("item")
    assert [i.findtext("uid") for i in items] == ["1", "2"]
    assert items[0].findtext("username") == "a&b"
    assert items[0].findtext("ok") == "true"


def test_result_response_headers() -> None:
    response = result_response({"uid": 5}, fmt="json", root="x", request_id="rid")
    assert response.headers["X-Error-Code"] == "0"
    assert orjson.loads(response.body) == {"uid": 5}


def test_legacy_http_200() -> None:
    response = api_error_response(
        ApiError(Code.INVALID_API_KEY), lang="en", fmt="json", request_id="r", legacy_http_200=True
    )
    assert response.status_code == 200
    assert response.headers["X-Error-Code"] == "101"


def test_rate_limited_has_retry_after() -> None:
    response = api_error_response(
        ApiError(Code.REQUEST_LIMIT_REACHED, headers={"Retry-After": "7"}),
        lang="en",
        fmt="json",
        request_id="r",
    )
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")


def test_oauth_error_body() -> None:
    response = oauth_error_response(
        OAuthError(Code.INVALID_GRANT, "code already used"), lang="en", request_id="r"
    )
    assert response.status_code == 400
    assert response.headers["Cache-Control"] == "no-store"
    assert orjson.loads(response.body) == {
        "error": "invalid_grant",
        "error_description": "Invalid grant",
        "error_code": 10002,
        "error_detail": "code already used",
    }


def test_oauth_basic_auth_failure_is_401() -> None:
    error = OAuthError(Code.INVALID_CLIENT, basic_auth_failed=True)
    response = oauth_error_response(error, lang="zh", request_id="r")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="openplatform"'
    assert orjson.loads(response.body)["error_description"] == entry(10001).zh


@pytest.mark.parametrize(
    ("param", "header", "expected"),
    [
        (None, None, "en"),
        ("zh", None, "zh"),
        ("en", "zh-CN,zh;q=0.9", "en"),
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,zh;q=0.5", "en"),
        (None, "de;q=bad, zh-TW", "zh"),
    ],
)
def test_language_negotiation(param: str | None, header: str | None, expected: str) -> None:
    assert negotiate_lang(param, header) == expected


def test_oauth_code_rejected_for_api_error_family() -> None:
    with pytest.raises(ValueError, match="not an OAuth error"):
        OAuthError(Code.INVALID_API_KEY)


def test_xml_keeps_carriage_returns_and_names_only_whole_names() -> None:
    """A raw CR came back as LF (XML end-of-line handling), and a key with a
    trailing newline passed as an element name (``$`` matches before it)."""
    root = ET.fromstring(render_body({"a": "x\r\ny\rz", "b\n": 1}, "xml", "r"))
    assert root.findtext("a") == "x\r\ny\rz"
    assert [child.tag for child in root] == ["a", "item"]
