"""Check 7 of PROTOCOL §3.3: the Referer host against the app's patterns."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from openplatform.errors import ApiError, Code

__all__ = ["check_referer", "referer_host", "referer_matches"]


def referer_host(referer: str) -> str | None:
    """The lowercase host of a Referer URL, or None when it has none."""
    try:
        host = urlsplit(referer.strip()).hostname
    except ValueError:
        return None
    return host.rstrip(".") if host else None


def referer_matches(host: str, pattern: str) -> bool:
    """``*.example.com`` matches subdomains at any depth, not ``example.com``;
    a pattern without ``*`` matches that host only (case-insensitive);
    ``*`` alone matches any host."""
    pattern = pattern.strip().lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def check_referer(referer: str | None, patterns: Sequence[str], *, allow_missing: bool) -> None:
    """No patterns allows all. A missing Referer passes only with
    ``allow_missing_referer``; a host matching no pattern is 7."""
    if not patterns:
        return
    if referer is None or not referer.strip():
        if allow_missing:
            return
        raise ApiError(Code.NO_PERMISSION_REFERER, "the Referer header is missing")
    host = referer_host(referer)
    if host is None or not any(referer_matches(host, pattern) for pattern in patterns):
        raise ApiError(Code.NO_PERMISSION_REFERER)
