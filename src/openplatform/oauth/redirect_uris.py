"""Redirect URI matching (RFC 6749 §3.1.2, RFC 9700 §4.1.3: exact string
comparison), with the loopback exception of RFC 8252 §7.3: for
``http://127.0.0.1`` and ``http://[::1]`` any port matches."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

from openplatform.errors import Code, OAuthError

__all__ = ["is_loopback_uri", "match_redirect_uri", "resolve_redirect_uri"]

_LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return parts


def _host_of(netloc: str) -> str:
    """The host part of ``netloc`` as written (no userinfo, no port)."""
    if "@" in netloc:
        return ""  # userinfo in a redirect URI is never a loopback redirect
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1] if "]" in netloc else ""
    return netloc.split(":", 1)[0]


def is_loopback_uri(uri: str) -> bool:
    """RFC 8252 §7.3: an ``http`` redirect to the loopback IP literal."""
    parts = _split(uri)
    return (
        parts is not None and parts.scheme == "http" and _host_of(parts.netloc) in _LOOPBACK_HOSTS
    )


def match_redirect_uri(requested: str, registered: str) -> bool:
    """Exact match, or both loopback URIs equal except for the port."""
    if requested == registered:
        return True
    if "#" in requested or not (is_loopback_uri(requested) and is_loopback_uri(registered)):
        return False
    req, reg = _split(requested), _split(registered)
    if req is None or reg is None:
        return False
    return (
        _host_of(req.netloc) == _host_of(reg.netloc)
        and req.path == reg.path
        and req.query == reg.query
        and req.fragment == reg.fragment == ""
    )


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
