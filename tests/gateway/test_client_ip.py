"""Client IP with trusted proxies, and the IP allowlist (PROTOCOL §3.3 check 6)."""

from __future__ import annotations

import pytest

from openplatform.config import parse_networks
from openplatform.errors import ApiError, Code
from openplatform.errors.render import api_error_body
from openplatform.gateway.client_ip import check_ip_allowlist, resolve_client_ip

PROXIES = parse_networks("10.0.0.0/8, fd00::/8", name="test")


def test_untrusted_peer_is_the_client_whatever_the_header_says() -> None:
    assert resolve_client_ip("203.0.113.9", ["1.2.3.4"], PROXIES) == "203.0.113.9"
    assert resolve_client_ip("10.0.0.1", ["1.2.3.4"], ()) == "10.0.0.1"


def test_trusted_peer_gives_the_rightmost_untrusted_hop() -> None:
    headers = ["198.51.100.7, 203.0.113.5", "10.1.1.1"]
    assert resolve_client_ip("10.0.0.2", headers, PROXIES) == "203.0.113.5"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert resolve_client_ip("10.0.0.2", ["10.0.0.5, 10.0.0.3"], PROXIES) == "10.0.0.5"


def test_trusted_peer_without_header_is_the_peer() -> None:
    assert resolve_client_ip("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_garbage_hop_stops_at_the_last_trusted_one() -> None:
    assert resolve_client_ip("10.0.0.2", ["1.2.3.4, nonsense, 10.0.0.9"], PROXIES) == "10.0.0.9"


def test_ipv6_and_mapped_ipv4() -> None:
    assert resolve_client_ip("fd00::1", ["2001:db8::1"], PROXIES) == "2001:db8::1"
    assert resolve_client_ip("::ffff:10.0.0.1", ["192.0.2.1"], PROXIES) == "192.0.2.1"


def test_empty_allowlist_allows_everyone() -> None:
    check_ip_allowlist("192.0.2.1", ())


@pytest.mark.parametrize("ip", ["192.0.2.1", "198.51.100.77", "2001:db8::abcd"])
def test_listed_ips_and_cidrs_pass(ip: str) -> None:
    check_ip_allowlist(ip, parse_networks("192.0.2.1, 198.51.100.0/24, 2001:db8::/32", name="t"))


def test_other_ip_is_5_with_the_ip_in_the_message() -> None:
    with pytest.raises(ApiError) as caught:
        check_ip_allowlist("203.0.113.1", parse_networks("192.0.2.0/24, 2001:db8::/32", name="t"))
    assert caught.value.code == Code.UNAUTHORIZED_CLIENT_IP
    body = api_error_body(caught.value, "en")
    assert body["error_msg"] == "Unauthorized client IP address:203.0.113.1"


def test_unparseable_client_is_refused_by_a_nonempty_list() -> None:
    with pytest.raises(ApiError):
        check_ip_allowlist("testclient", parse_networks("0.0.0.0/0", name="t"))
