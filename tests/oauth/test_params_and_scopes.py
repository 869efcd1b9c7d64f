"""Parameter rules (RFC 6749 §3.1, §3.2) and scope parsing (§3.3)."""

from __future__ import annotations

import pytest

from openplatform.errors import Code, OAuthError
from openplatform.oauth.params import OAuthParams
from openplatform.oauth.rfc9207 import authorization_response_uri
from openplatform.oauth.scopes import parse_scope, scope_text


def test_empty_values_count_as_absent_and_duplicates_are_refused() -> None:
    params = OAuthParams.from_pairs([("a", ""), ("b", "1"), ("b", "2"), ("c", "x")])
    assert params.get("a") is None
    assert params.get("c") == "x"
    with pytest.raises(OAuthError) as info:
        params.get("b")
    assert info.value.code == Code.INVALID_REQUEST
    assert params.first("b") == "1"


def test_scope_parsing() -> None:
    assert parse_scope(None) is None
    assert parse_scope("basic  email basic") == ("basic", "email")
    with pytest.raises(OAuthError) as info:
        parse_scope("basic admin")
    assert info.value.code == Code.INVALID_SCOPE
    with pytest.raises(OAuthError) as info:
        parse_scope('basic "quoted"')
    assert info.value.code == Code.INVALID_REQUEST


def test_scopes_are_described_in_both_languages() -> None:
    assert scope_text("email", "en") == "See your email address"
    assert scope_text("email", "zh") == "查看你的电子邮箱地址"


def test_authorization_response_keeps_the_registered_query_and_adds_iss() -> None:
    """RFC 6749 §3.1.2 (keep the query) and RFC 9207 (``iss``)."""
    uri = authorization_response_uri(
        "https://c.example/cb?tenant=7", [("code", "abc"), ("state", None)], "https://id.example"
    )
    assert uri == "https://c.example/cb?tenant=7&code=abc&iss=https%3A%2F%2Fid.example"


def test_scopes_and_grants_agree_with_the_app_settings() -> None:
    """The consent words and the metadata cover exactly what apps may be given."""
    from openplatform.oauth.rfc8414 import GRANT_TYPES
    from openplatform.oauth.scopes import KNOWN_SCOPES
    from openplatform.storage.apps import KNOWN_GRANTS
    from openplatform.storage.apps import KNOWN_SCOPES as APP_SCOPES

    assert tuple(KNOWN_SCOPES) == APP_SCOPES
    assert GRANT_TYPES == KNOWN_GRANTS
