"""Which rate limits apply to a call (PROTOCOL §3.3 check 13, §5 settings)."""

from __future__ import annotations

import pytest

from openplatform.cache import RateStatus
from openplatform.gateway.rate_limits import method_matches, rules_for_call
from openplatform.storage.apps import RateLimit

LIMITS = (
    RateLimit("*", "app", 100, 60),
    RateLimit("data.*", "user", 10, 60),
    RateLimit("users.getInfo", "ip", 5, 1),
)


@pytest.mark.parametrize(
    ("method", "pattern", "expected"),
    [
        ("users.getInfo", "*", True),
        ("users.getInfo", "users.getInfo", True),
        ("users.getInfo", "users.*", True),
        ("users.getInfo", "data.*", False),
        ("users.getInfoX", "users.getInfo", False),
    ],
)
def test_method_patterns(method: str, pattern: str, expected: bool) -> None:
    assert method_matches(method, pattern) is expected


def test_every_matching_limit_applies_with_its_subject() -> None:
    rules = rules_for_call("data.getHashValue", LIMITS, user_id=7, client_ip="192.0.2.1")
    assert [(r.limit, r.window_s) for r in rules] == [(100, 60), (10, 60)]
    assert rules[0].key.endswith(":app")
    assert rules[1].key.endswith(":u:7")
    rules = rules_for_call("users.getInfo", LIMITS, user_id=None, client_ip="192.0.2.1")
    assert [r.key.rsplit(":", 1)[-1] for r in rules] == ["app", "192.0.2.1"]


def test_per_user_limits_skip_app_only_calls() -> None:
    rules = rules_for_call("data.x", LIMITS, user_id=None, client_ip="192.0.2.1")
    assert len(rules) == 1


def test_edited_rule_gets_a_new_counter() -> None:
    before = rules_for_call("x", (RateLimit("*", "app", 100, 60),), user_id=None, client_ip="")
    after = rules_for_call("x", (RateLimit("*", "app", 50, 60),), user_id=None, client_ip="")
    assert before[0].key != after[0].key


def test_headers() -> None:
    assert RateStatus(limit=10, remaining=3, reset_s=42, retry_after_s=0).headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "3",
        "X-RateLimit-Reset": "42",
    }
    assert RateStatus(limit=10, remaining=0, reset_s=42, retry_after_s=6).headers() == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "42",
        "Retry-After": "6",
    }
