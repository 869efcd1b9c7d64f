"""Referer allowlist with wildcards (PROTOCOL §3.3 check 7)."""

from __future__ import annotations

import pytest

from openplatform.errors import ApiError, Code
from openplatform.gateway.referer import check_referer, referer_matches

PATTERNS = ["*.example.com", "shop.example.org"]


@pytest.mark.parametrize(
    ("host", "pattern", "expected"),
    [
        ("a.example.com", "*.example.com", True),
        ("a.b.c.example.com", "*.example.com", True),
        ("example.com", "*.example.com", False),
        ("badexample.com", "*.example.com", False),
        ("shop.example.org", "shop.example.org", True),
        ("x.shop.example.org", "shop.example.org", False),
        ("anything.net", "*", True),
    ],
)
def test_pattern_matching(host: str, pattern: str, expected: bool) -> None:
    assert referer_matches(host, pattern) is expected


def test_no_patterns_allow_everything_even_missing() -> None:
    check_referer(None, [], allow_missing=False)
    check_referer("https://evil.test/", [], allow_missing=False)


@pytest.mark.parametrize(
    "referer",
    [
        "https://www.example.com/page?x=1",
        "http://SHOP.example.org:8080/",
        "https://a.b.example.com",
    ],
)
def test_matching_referers_pass(referer: str) -> None:
    check_referer(referer, PATTERNS, allow_missing=False)


@pytest.mark.parametrize(
    "referer",
    ["https://example.com/", "https://evil.test/", "not a url", "https://example.com.evil.test/"],
)
def test_other_referers_are_7(referer: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_referer(referer, PATTERNS, allow_missing=True)
    assert caught.value.code == Code.NO_PERMISSION_REFERER


def test_missing_referer_needs_allow_missing() -> None:
    with pytest.raises(ApiError) as caught:
        check_referer(None, PATTERNS, allow_missing=False)
    assert caught.value.code == Code.NO_PERMISSION_REFERER
    check_referer(None, PATTERNS, allow_missing=True)
    check_referer("", PATTERNS, allow_missing=True)
