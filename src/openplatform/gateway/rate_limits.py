"""Check 13 of PROTOCOL §3.3: which of an app's rate limits apply to a call,
as counters for :meth:`SharedState.check_call`, and the ``X-RateLimit-*``
headers of the answer."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from functools import lru_cache

from openplatform.cache import RateLimitRule
from openplatform.storage.apps import RateLimit

__all__ = ["method_matches", "rules_for_call"]

_MAX_PER_SECOND = 1_000_000  # the shared state counts in microseconds


@lru_cache(maxsize=4096)
def method_matches(method: str, pattern: str) -> bool:
    """``*``, an exact method name, or a glob such as ``data.*``."""
    return pattern == "*" or method == pattern or fnmatchcase(method, pattern)


def rules_for_call(
    method: str, limits: Sequence[RateLimit], *, user_id: int | None, client_ip: str
) -> list[RateLimitRule]:
    """Every limit of the app that matches ``method``, as one counter each.

    A counter's key names the rule (its position and definition, so an edited
    rule starts afresh) and the subject: the app, the user, or the client IP.
    A per-user limit does not apply to app-only calls, which have no user.
    """
    rules: list[RateLimitRule] = []
    for index, limit in enumerate(limits):
        if not method_matches(method, limit.methods):
            continue
        if limit.per == "app":
            subject = "app"
        elif limit.per == "user":
            if user_id is None:
                continue
            subject = f"u:{user_id}"
        else:
            subject = f"ip:{client_ip}"
        rules.append(
            RateLimitRule(
                key=f"{index}:{limit.methods}:{limit.limit}/{limit.window_s}:{subject}",
                limit=min(limit.limit, limit.window_s * _MAX_PER_SECOND),
                window_s=limit.window_s,
            )
        )
    return rules
