"""Checks 3 and 4 of PROTOCOL §3.3: how many parameters, and whether they are
well formed (duplicates, sizes, ``v``, ``format``, ``method``, ``client_ip``)."""

from __future__ import annotations

from collections.abc import Sequence

from openplatform.errors import ApiError, Code
from openplatform.gateway.client_ip import parse_ip
from openplatform.methods.registry import MethodSpec

__all__ = [
    "COMMON_PARAM_LIMITS",
    "MAX_KEY_LENGTH",
    "MAX_UNDECLARED_VALUE_LENGTH",
    "check_param_count",
    "check_well_formed",
]

# Longest value (in characters) of each common parameter (PROTOCOL §3.1).
COMMON_PARAM_LIMITS: dict[str, int] = {
    "method": 100,
    "api_key": 64,
    "access_token": 512,
    "session_key": 512,
    "sig": 128,
    "sign_method": 32,
    "timestamp": 64,
    "call_id": 256,
    "v": 16,
    "format": 16,
    "lang": 32,
    "client_ip": 64,
}
MAX_KEY_LENGTH = 64
MAX_UNDECLARED_VALUE_LENGTH = 64 * 1024


def check_param_count(count: int, max_params: int) -> None:
    """Check 3: ``count`` parameters as sent (a method taken from the path is
    not one of them)."""
    if count > max_params:
        raise ApiError(
            Code.TOO_MANY_PARAMETERS,
            f"{count} parameters given, the limit is {max_params} "
            f"(request_args lists the first {max_params})",
        )


def _value_limit(key: str, spec: MethodSpec) -> int:
    common = COMMON_PARAM_LIMITS.get(key)
    if common is not None:
        return common
    param = spec.param(key)
    return param.max_length if param is not None else MAX_UNDECLARED_VALUE_LENGTH


def check_well_formed(
    pairs: Sequence[tuple[str, str]],
    problem: str | None,
    spec: MethodSpec,
    *,
    path_method: str | None,
    bearer: str | None,
) -> dict[str, str]:
    """Check 4: the parameters by name, or 100 (114 for a malformed ``client_ip``).

    ``problem`` is what parsing found (bad UTF-8 or percent-encoding); ``bearer``
    is the ``Authorization: Bearer`` token, which may not contradict an
    ``access_token`` parameter.
    """
    if problem is not None:
        raise ApiError(Code.INVALID_PARAMETER, problem)
    params: dict[str, str] = {}
    for key, value in pairs:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApiError(
                Code.INVALID_PARAMETER,
                f"parameter names must be 1 to {MAX_KEY_LENGTH} printable characters",
            )
        if key in params:
            raise ApiError(Code.INVALID_PARAMETER, f"parameter {key!r} is given more than once")
        limit = _value_limit(key, spec)
        if len(value) > limit:
            raise ApiError(
                Code.INVALID_PARAMETER, f"{key} is longer than {limit} characters ({len(value)})"
            )
        params[key] = value
    named = params.get("method")
    if named is not None and path_method is not None and named != path_method:
        raise ApiError(
            Code.INVALID_PARAMETER, f"method {named!r} disagrees with the path ({path_method!r})"
        )
    if params.get("v", "2.0") != "2.0":
        raise ApiError(Code.INVALID_PARAMETER, "v must be 2.0")
    if params.get("format", "json") not in ("json", "xml"):
        raise ApiError(Code.INVALID_PARAMETER, "format must be json or xml")
    if bearer is not None:
        if "sig" in params:
            # PROTOCOL §3.1: the header is not covered by the signature, so it
            # could re-point a captured signed request at another user.
            raise ApiError(
                Code.INVALID_PARAMETER,
                "a signed call carries its access_token as a signed parameter, "
                "not in the Authorization header",
            )
        token = params.get("access_token")
        if token is not None and token != bearer:
            raise ApiError(
                Code.INVALID_PARAMETER,
                "access_token and the Authorization header name different tokens",
            )
    if "access_token" in params and "session_key" in params:
        raise ApiError(Code.INVALID_PARAMETER, "give access_token or session_key, not both")
    client_ip = params.get("client_ip")
    if client_ip is not None and parse_ip(client_ip) is None:
        raise ApiError(Code.INVALID_IP, "client_ip is not an IP address")
    return params
