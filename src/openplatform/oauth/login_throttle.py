"""Rate limits on password checks (RFC 6749 §10.10, RFC 9700 §2.4): per
account and per client IP, so that neither one account nor one address can
be used to guess passwords. Counters live in the shared state, so the limits
hold across server processes."""

from __future__ import annotations

from dataclasses import dataclass

from openplatform.cache import RateLimitRule, RateStatus, SharedState

__all__ = ["LoginThrottle"]

_APP = "oauth-login"


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    shared_state: SharedState
    per_account: int = 10
    per_ip: int = 50
    window_s: int = 300

    async def attempt(self, username: str, client_ip: str) -> RateStatus:
        """Consume one attempt for the account and the IP. ``retry_after_s`` is 0
        when allowed, else the seconds to wait (a refused attempt consumes
        nothing); :meth:`RateStatus.headers` gives the response headers."""
        account = username.strip().lower()
        rules = (
            RateLimitRule(f"login:user:{account}", self.per_account, self.window_s),
            RateLimitRule(f"login:ip:{client_ip}", self.per_ip, self.window_s),
        )
        verdict = await self.shared_state.hit_rate_limits(_APP, rules)
        assert verdict.rate is not None, "a check with limits reports their status"
        return verdict.rate
