"""Redirect URI matching (RFC 6749 §3.1.2, RFC 9700 §4.1.3: exact string
comparison), with the loopback exception of RFC 8252 §7.3: for
``http://127.0.0.1`` and ``http://[::1]`` any port matches."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from openplatform.errors import Code, OAuthError

__all__ = ["loopback_parts", "match_redirect_uri", "resolve_redirect_uri"]

# PROTOCOL §2: the loopback literal, then ``:port`` or nothing — so that
# ``http://[::1]evil.com/`` (which urlsplit does not refuse) is no loopback URI.
_LOOPBACK_NETLOC = re.compile(r"(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?")


def loopback_parts(uri: str) -> tuple[str, str, str] | None:
    """RFC 8252 §7.3: for an ``http`` redirect to a loopback IP literal, its
    host, path and query (what must match, the port aside); else None."""
    if "#" in uri:
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    netloc = _LOOPBACK_NETLOC.fullmatch(parts.netloc)
    if parts.scheme != "http" or netloc is None:
        return None
    if netloc[2] is not None and int(netloc[2]) > 65535:
        return None
    return netloc[1], parts.path, parts.query


def match_redirect_uri(requested: str, registered: str) -> bool:
    """Exact match, or both loopback URIs equal except for the port."""
    if requested == registered:
        return True
    loopback = loopback_parts(requested)
    return loopback is not None and loopback == loopback_parts(registered)


def resolve_redirect_uri(requested: str | None, registered: Sequence[str]) -> str:
    """PROTOCOL §2: the URI to redirect to. Omitted with exactly one registered:
    that one; omitted with several: 10000; not registered: 10007. These errors
    never redirect (RFC 6749 §4.1.2.1)."""
    if requested is None:
        if len(registered) == 1:
            return registered[0]
        if not registered:
            raise OAuthError(
                Code.REDIRECT_URI_MISMATCH, "the app has no redirect URI", redirectable=False
            )
        raise OAuthError(
            Code.INVALID_REQUEST,
            "redirect_uri is required: the app has several",
            redirectable=False,
        )
    if any(match_redirect_uri(requested, uri) for uri in registered):
        return requested
    raise OAuthError(
        Code.REDIRECT_URI_MISMATCH,
        "redirect_uri is not registered for this app",
        redirectable=False,
    )
