"""The one place that decides a request's client IP (PROTOCOL §3.3), and the
IP allowlist check (check 6)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from openplatform.config import IPNetwork
from openplatform.errors import ApiError, Code

__all__ = ["check_ip_allowlist", "parse_ip", "resolve_client_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """An IP address (v4, v6; IPv4-mapped v6 as v4), or None if ``text`` is not
    one. Remembered for the addresses seen most: parsing is a good part of a
    call's checks, and a call's peer is usually one seen before."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def _forwarded_hops(headers: Iterable[str]) -> list[str]:
    return [hop.strip() for header in headers for hop in header.split(",") if hop.strip()]


def resolve_client_ip(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[IPNetwork]
) -> str:
    """The socket peer, or — only when the peer is a trusted proxy — the
    right-most address of ``X-Forwarded-For`` that is not a trusted proxy.

    A hop that is not an IP address stops the walk: the last trusted hop is
    answered, never text a client could have made up.
    """
    peer_text = peer or ""
    current = parse_ip(peer_text)
    if current is None or not trusted_proxies or not _trusted(current, trusted_proxies):
        return str(current) if current is not None else peer_text
    for hop in reversed(_forwarded_hops(forwarded_for)):
        address = parse_ip(hop)
        if address is None:
            break
        current = address
        if not _trusted(address, trusted_proxies):
            break
    return str(current)


def check_ip_allowlist(client_ip: str, allowlist: Sequence[IPNetwork]) -> None:
    """Check 6: the client IP is in the app's allowlist (``AppSettings.ip_networks``;
    an empty list allows all) → else 5, with the IP in the message."""
    if not allowlist:
        return
    address = parse_ip(client_ip)
    if address is None or not any(
        address.version == net.version and address in net for net in allowlist
    ):
        # The English text has a %s for the IP, the Chinese none: error_detail
        # names it in every language.
        raise ApiError(Code.UNAUTHORIZED_CLIENT_IP, f"client IP {client_ip}", fill=client_ip)
