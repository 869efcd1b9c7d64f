"""RFC 9207: the ``iss`` parameter in every authorization response, success or
error, so a client talking to several servers can tell which one answered."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit, urlunsplit

__all__ = ["authorization_response_uri"]


def authorization_response_uri(
    redirect_uri: str, params: Iterable[tuple[str, str | None]], issuer: str
) -> str:
    """``redirect_uri`` with ``params`` (None values left out) and ``iss`` added
    to its query, keeping the query it already has (RFC 6749 §3.1.2)."""
    parts = urlsplit(redirect_uri)
    pairs = [(key, value) for key, value in params if value is not None]
    pairs.append(("iss", issuer))
    added = urlencode(pairs)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
