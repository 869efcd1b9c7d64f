"""Parameter values as the open API reads them (PROTOCOL §4): lists as comma
lists, mappings as JSON objects, booleans as ``true``/``false``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = ["RESERVED_PARAMS", "ParamValue", "encode_params", "encode_value"]

Scalar: TypeAlias = str | int | float | bool
ParamValue: TypeAlias = Scalar | Sequence[Scalar] | Mapping[str, object] | None

# Parameters the client itself sets (credentials, signature, freshness,
# format): a call may not pass them as method parameters.
RESERVED_PARAMS = frozenset(
    {
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
    }
)


def _scalar(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_value(value: ParamValue) -> str | None:
    """The wire text of one parameter value; None for a parameter left out."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        items = [_scalar(item) for item in value]
        if any("," in item for item in items):
            # A comma inside an item would split it: send a JSON array instead.
            return json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))
        return ",".join(items)
    return _scalar(value)


def encode_params(params: Mapping[str, ParamValue]) -> dict[str, str]:
    """Every parameter that is not None, encoded; reserved names refused."""
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise ValueError(f"the client sets {', '.join(reserved)} itself")
    encoded: dict[str, str] = {}
    for key, value in params.items():
        text = encode_value(value)
        if text is not None:
            encoded[key] = text
    return encoded
