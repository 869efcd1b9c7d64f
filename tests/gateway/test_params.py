"""Checks 3 and 4 of PROTOCOL §3.3 as units."""

from __future__ import annotations

import pytest

from openplatform.errors import ApiError, Code
from openplatform.gateway.params import check_param_count, check_well_formed
from openplatform.methods.registry import MethodCall, MethodSpec, Param


async def _noop(call: MethodCall) -> object:
    return None


SPEC = MethodSpec("t.m", _noop, params=(Param("short", max_length=3),))


def well_formed(pairs: list[tuple[str, str]], **kw: str | None) -> dict[str, str]:
    return check_well_formed(
        pairs,
        kw.get("problem"),
        SPEC,
        path_method=kw.get("path_method"),
        bearer=kw.get("bearer"),
    )


def code_of(pairs: list[tuple[str, str]], **kw: str | None) -> int:
    with pytest.raises(ApiError) as caught:
        well_formed(pairs, **kw)
    return int(caught.value.code)


def test_count_limit() -> None:
    check_param_count(50, 50)
    with pytest.raises(ApiError) as caught:
        check_param_count(51, 50)
    assert caught.value.code == Code.TOO_MANY_PARAMETERS
    assert caught.value.detail == (
        "51 parameters given, the limit is 50 (request_args lists the first 50)"
    )


def test_well_formed_params_by_name() -> None:
    assert well_formed([("a", "1"), ("short", "abc")]) == {"a": "1", "short": "abc"}


@pytest.mark.parametrize(
    "pairs",
    [
        [("a", "1"), ("a", "1")],
        [("", "1")],
        [("k" * 65, "1")],
        [("a\x00", "1")],
        [("short", "abcd")],
        [("api_key", "k" * 65)],
        [("x", "v" * (64 * 1024 + 1))],
        [("v", "1.0")],
        [("format", "yaml")],
        [("access_token", "a"), ("session_key", "b")],
    ],
)
def test_malformed_is_100(pairs: list[tuple[str, str]]) -> None:
    assert code_of(pairs) == Code.INVALID_PARAMETER


def test_parse_problem_is_100() -> None:
    assert code_of([("a", "1")], problem="a parameter value is not valid UTF-8") == 100


def test_method_parameter_must_agree_with_the_path() -> None:
    assert well_formed([("method", "t.m")], path_method="t.m") == {"method": "t.m"}
    assert code_of([("method", "t.x")], path_method="t.m") == 100


def test_bearer_header_may_not_contradict_the_parameter() -> None:
    well_formed([("access_token", "abc")], bearer="abc")
    assert code_of([("access_token", "abc")], bearer="xyz") == 100


@pytest.mark.parametrize("ip", ["1.2.3", "example.com", "1.2.3.4/24", ""])
def test_malformed_client_ip_is_114(ip: str) -> None:
    assert code_of([("client_ip", ip)]) == Code.INVALID_IP


@pytest.mark.parametrize("ip", ["203.0.113.5", "2001:db8::1"])
def test_client_ip_v4_and_v6(ip: str) -> None:
    assert well_formed([("client_ip", ip)])["client_ip"] == ip
