"""Redirect URI matching: exact, with the RFC 8252 §7.3 loopback exception."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openplatform.errors import Code, OAuthError
from openplatform.oauth.redirect_uris import (
    loopback_parts,
    match_redirect_uri,
    resolve_redirect_uri,
)


@pytest.mark.parametrize(
    ("requested", "registered"),
    [
        ("https://app.example/cb", "https://app.example/cb"),
        ("http://127.0.0.1:51000/cb", "http://127.0.0.1/cb"),
        ("http://127.0.0.1:51000/cb", "http://127.0.0.1:8080/cb"),
        ("http://[::1]:6000/cb?x=1", "http://[::1]/cb?x=1"),
    ],
)
def test_matches(requested: str, registered: str) -> None:
    assert match_redirect_uri(requested, registered)


@pytest.mark.parametrize(
    ("requested", "registered"),
    [
        ("https://app.example/cb/", "https://app.example/cb"),
        ("https://APP.example/cb", "https://app.example/cb"),
        ("https://app.example/cb?x=1", "https://app.example/cb"),
        ("https://app.example:444/cb", "https://app.example/cb"),
        ("https://app.example.evil/cb", "https://app.example/cb"),
        ("https://app.example/cb#frag", "https://app.example/cb"),
        ("http://localhost:5000/cb", "http://localhost/cb"),  # only IP literals (RFC 8252 §8.3)
        ("https://127.0.0.1:5000/cb", "https://127.0.0.1/cb"),  # loopback exception is http only
        ("http://127.0.0.1:5000/other", "http://127.0.0.1/cb"),
        ("http://127.0.0.1.evil.example/cb", "http://127.0.0.1/cb"),
        ("http://evil@127.0.0.1:5000/cb", "http://127.0.0.1/cb"),
        ("http://127.0.0.1:99999/cb", "http://127.0.0.1/cb"),
        ("http://[::1]:5000/cb", "http://127.0.0.1/cb"),
        # PROTOCOL §2: the literal host, then ":port" or nothing
        ("http://[::1]evil.com/cb?x=1", "http://[::1]:8080/cb?x=1"),
        ("http://[::1]:evil.com/cb?x=1", "http://[::1]:8080/cb?x=1"),
        ("http://127.0.0.1:80evil/cb", "http://127.0.0.1/cb"),
        ("http://127.0.0.1:/cb", "http://127.0.0.1/cb"),
        ("http://127.0.0.1:+80/cb", "http://127.0.0.1/cb"),
        ("http://127.0.0.1 :80/cb", "http://127.0.0.1/cb"),
    ],
)
def test_does_not_match(requested: str, registered: str) -> None:
    assert not match_redirect_uri(requested, registered)


def test_loopback_detection() -> None:
    assert loopback_parts("http://127.0.0.1:1/x") == ("127.0.0.1", "/x", "")
    assert loopback_parts("http://[::1]/x?y=1") == ("[::1]", "/x", "y=1")
    assert loopback_parts("http://localhost/x") is None
    assert loopback_parts("http://[::1]evil.com/x") is None


def test_omitted_uses_the_only_registered_one() -> None:
    assert resolve_redirect_uri(None, ["https://a.example/cb"]) == "https://a.example/cb"


def test_omitted_with_several_is_a_non_redirecting_invalid_request() -> None:
    with pytest.raises(OAuthError) as info:
        resolve_redirect_uri(None, ["https://a.example/1", "https://a.example/2"])
    assert info.value.code == Code.INVALID_REQUEST
    assert not info.value.redirectable


def test_unregistered_is_a_non_redirecting_mismatch() -> None:
    with pytest.raises(OAuthError) as info:
        resolve_redirect_uri("https://evil.example/cb", ["https://a.example/cb"])
    assert info.value.code == Code.REDIRECT_URI_MISMATCH
    assert not info.value.redirectable


REGISTERED = "https://client.example/cb"
LOOPBACK = "http://127.0.0.1/cb"

_uri_parts = st.sampled_from(
    [
        "https://",
        "http://",
        "//",
        "client.example",
        "evil.example",
        "127.0.0.1",
        "[::1]",
        ":",
        "8080",
        "@",
        "/cb",
        "/",
        "?",
        "#",
        "%2F",
        ".",
        "\\",
        " ",
        "\t",
        "cb",
        "..",
    ]
)


@given(st.lists(_uri_parts, max_size=8).map("".join) | st.text(max_size=40))
def test_only_the_registered_uri_matches(candidate: str) -> None:
    if match_redirect_uri(candidate, REGISTERED):
        assert candidate == REGISTERED


@given(st.lists(_uri_parts, max_size=8).map("".join) | st.text(max_size=40))
def test_loopback_matches_differ_only_in_the_port(candidate: str) -> None:
    if match_redirect_uri(candidate, LOOPBACK):
        parts = urlsplit(candidate)
        assert parts.scheme == "http"
        assert parts.netloc == "127.0.0.1" or parts.netloc.startswith("127.0.0.1:")
        assert parts.netloc[len("127.0.0.1:") :].isdigit() or parts.netloc == "127.0.0.1"
        assert parts.hostname == "127.0.0.1"
        assert parts.username is None
        assert parts.path == "/cb"
        assert parts.query == ""
        assert parts.fragment == ""
