"""AppSettings: PROTOCOL §5 defaults and validation (100, or 114 for IPs)."""

from __future__ import annotations

import ipaddress

import pytest

from openplatform.errors import ApiError, Code
from openplatform.storage.apps import AppSettings, RateLimit


def error_of(data: dict[str, object], base: AppSettings | None = None) -> ApiError:
    with pytest.raises(ApiError) as info:
        AppSettings.from_mapping(data, base)
    return info.value


def test_defaults_of_a_confidential_app() -> None:
    settings = AppSettings.from_mapping({"name": "Demo"})
    assert settings.to_json() == {
        "name": "Demo",
        "description": "",
        "icon_url": "",
        "redirect_uris": [],
        "public": False,
        "scopes": ["basic"],
        "grants": ["authorization_code", "refresh_token", "client_credentials"],
        "ip_allowlist": [],
        "referer_allowlist": [],
        "allow_missing_referer": False,
        "rate_limits": [{"methods": "*", "per": "app", "limit": 10000, "window_s": 60}],
        "require_signature": False,
        "legacy_http_200": False,
        "status": "active",
        "access_token_ttl_s": 3600,
        "refresh_token_ttl_s": 2592000,
        "storage_quota_bytes": 10 * 1024 * 1024,
        "require_pkce": True,
        "require_call_id": False,
        "refresh_reuse_grace_s": 10,
    }


def test_public_app_defaults_and_rules() -> None:
    settings = AppSettings.from_mapping({"name": "SPA", "public": True})
    assert settings.grants == ("authorization_code", "refresh_token")
    assert settings.require_pkce is True
    error = error_of({"name": "SPA", "public": True, "grants": ["client_credentials"]})
    assert error.code == Code.INVALID_PARAMETER
    assert "client_credentials" in (error.detail or "")
    error = error_of({"name": "SPA", "public": True, "require_pkce": False})
    assert "require_pkce" in (error.detail or "")


def test_password_grant_only_on_request() -> None:
    assert "password" not in AppSettings.from_mapping({"name": "a"}).grants
    settings = AppSettings.from_mapping({"name": "a", "grants": ["password", "refresh_token"]})
    assert settings.grants == ("password", "refresh_token")


def test_round_trip_through_json() -> None:
    data = {
        "name": "Full",
        "redirect_uris": ["https://app.example.com/cb", "com.example.app:/oauth"],
        "scopes": ["basic", "email", "mobile", "data"],
        "ip_allowlist": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"],
        "referer_allowlist": ["*.example.com", "example.org"],
        "allow_missing_referer": True,
        "rate_limits": [
            {"methods": "data.*", "per": "user", "limit": 5, "window_s": 1},
            {"methods": "users.getInfo", "per": "ip", "limit": 100, "window_s": 3600},
        ],
        "require_signature": True,
        "legacy_http_200": True,
        "status": "suspended",
        "access_token_ttl_s": 600,
        "refresh_token_ttl_s": 86400,
        "storage_quota_bytes": 0,
        "require_pkce": False,
        "require_call_id": True,
        "refresh_reuse_grace_s": 0,
        "description": "d",
        "icon_url": "https://cdn.example.com/i.png",
    }
    settings = AppSettings.from_mapping(data)
    assert AppSettings.from_mapping(settings.to_json()) == settings
    assert settings.rate_limits[0] == RateLimit(methods="data.*", per="user", limit=5, window_s=1)
    assert ipaddress.ip_address("10.1.2.3") in settings.ip_networks[0]
    assert ipaddress.ip_address("2001:db8::1") in settings.ip_networks[2]
    for key, value in data.items():
        assert settings.to_json()[key] == value


def test_partial_update_over_a_base() -> None:
    base = AppSettings.from_mapping({"name": "A", "scopes": ["basic", "email"]})
    patched = AppSettings.from_mapping({"require_signature": True}, base)
    assert patched.require_signature is True
    assert patched.scopes == ("basic", "email")
    assert patched.name == "A"


def test_switching_to_public_follows_the_grant_defaults() -> None:
    base = AppSettings.from_mapping({"name": "A"})
    public = AppSettings.from_mapping({"public": True}, base)
    assert public.grants == ("authorization_code", "refresh_token")
    back = AppSettings.from_mapping({"public": False}, public)
    assert "client_credentials" in back.grants
    custom = AppSettings.from_mapping({"grants": ["client_credentials", "password"]}, base)
    assert AppSettings.from_mapping({"public": True}, custom).grants == ("password",)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "colour": "red"}, "colour"),
        ({"name": "a", "scopes": ["basic", "admin"]}, "scopes[1]"),
        ({"name": "a", "scopes": "basic"}, "scopes"),
        ({"name": "a", "grants": ["implicit"]}, "grants[0]"),
        ({"name": "a", "redirect_uris": ["/relative"]}, "redirect_uris[0]"),
        ({"name": "a", "redirect_uris": ["https://a.example/cb#frag"]}, "fragment"),
        ({"name": "a", "redirect_uris": ["https:///nohost"]}, "redirect_uris[0]"),
        ({"name": "a", "referer_allowlist": ["http://example.com/"]}, "referer_allowlist[0]"),
        ({"name": "a", "referer_allowlist": ["ex*ample.com"]}, "referer_allowlist[0]"),
        ({"name": "a", "rate_limits": [{"per": "app", "limit": 1}]}, "window_s"),
        ({"name": "a", "rate_limits": [{"per": "host", "limit": 1, "window_s": 1}]}, "per"),
        ({"name": "a", "rate_limits": [{"limit": 0, "window_s": 1}]}, "limit"),
        ({"name": "a", "rate_limits": [{"limit": 1, "window_s": 1, "x": 1}]}, "'x'"),
        ({"name": "a", "rate_limits": [{"methods": "a b", "limit": 1, "window_s": 1}]}, "methods"),
        ({"name": "a", "rate_limits": {"limit": 1}}, "rate_limits"),
        ({"name": "a", "require_signature": "yes"}, "require_signature"),
        ({"name": "a", "require_signature": 1}, "require_signature"),
        ({"name": "a", "status": "deleted"}, "status"),
        ({"name": "a", "access_token_ttl_s": 0}, "access_token_ttl_s"),
        ({"name": "a", "access_token_ttl_s": True}, "access_token_ttl_s"),
        ({"name": "a", "access_token_ttl_s": "3600"}, "access_token_ttl_s"),
        ({"name": "a", "storage_quota_bytes": -1}, "storage_quota_bytes"),
        ({"name": "a", "refresh_reuse_grace_s": 1.5}, "refresh_reuse_grace_s"),
        ({"name": "a", "icon_url": "javascript:alert(1)"}, "icon_url"),
    ],
)
def test_invalid_settings_are_100_naming_the_field(data: dict[str, object], field: str) -> None:
    error = error_of(data)
    assert error.code == Code.INVALID_PARAMETER
    assert field in (error.detail or "")


@pytest.mark.parametrize("bad", ["10.0.0.300", "10.0.0.0/33", "2001:db8::/129", "example.com", ""])
def test_bad_ip_or_cidr_is_114(bad: str) -> None:
    error = error_of({"name": "a", "ip_allowlist": ["127.0.0.1", bad]})
    assert error.code == Code.INVALID_IP
    assert "ip_allowlist[1]" in (error.detail or "")


def test_unknown_key_in_a_patch_is_100() -> None:
    base = AppSettings.from_mapping({"name": "A"})
    assert error_of({"secret": "x"}, base).code == Code.INVALID_PARAMETER
