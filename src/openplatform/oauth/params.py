"""Request parameters of the OAuth endpoints (RFC 6749 §3.1, §3.2: parameters
sent without a value are treated as omitted; none may be included more than
once)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from openplatform.errors import Code, OAuthError

__all__ = ["OAuthParams"]

_MAX_VALUE_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class OAuthParams:
    """The parameters of one request, each key with every value it was given."""

    values: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> OAuthParams:
        grouped: dict[str, list[str]] = {}
        for key, value in pairs:
            grouped.setdefault(key, []).append(value)
        return cls({key: tuple(values) for key, values in grouped.items()})

    def get(self, name: str, *, redirectable: bool = True) -> str | None:
        """The single value of ``name``; None when absent or empty. Given twice
        or absurdly long: 10000."""
        values = [value for value in self.values.get(name, ()) if value != ""]
        if len(values) > 1:
            raise OAuthError(
                Code.INVALID_REQUEST, f"{name} given more than once", redirectable=redirectable
            )
        if not values:
            return None
        if len(values[0]) > _MAX_VALUE_LENGTH:
            raise OAuthError(Code.INVALID_REQUEST, f"{name} is too long", redirectable=redirectable)
        return values[0]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise OAuthError(Code.INVALID_REQUEST, f"{name} is required")
        return value

    def first(self, name: str) -> str | None:
        """The first value, never raising (the ``state`` to echo in an error)."""
        for value in self.values.get(name, ()):
            if value != "":
                return value[:_MAX_VALUE_LENGTH]
        return None
