"""Limits on failed password checks (RFC 6749 §10.10, RFC 9700 §2.4,
PROTOCOL §2): per account and per client IP, so that neither one account nor
one address can be used to guess passwords — while successful sign-ins count
nothing (an office, a campus or a carrier's NAT puts thousands of people
behind one address; one person signs in to many apps).

Exact across server processes and under concurrency: each attempt takes one
slot from both counters in the shared state *before* the password is checked
(one atomic step; refused when either is full), and a right password gives
the slots back — the account's counter is cleared (a success ends a run of
failures), the IP's gets its one slot back. So at most ``limit`` failures can
ever be in flight or counted, however many attempts race.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from openplatform.cache import RateLimitRule, RateStatus, SharedState
from openplatform.config import Settings

__all__ = ["LoginAttempt", "LoginThrottle"]

_APP = "oauth-login"


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One password check's place under the limits. ``status`` is None when
    every limit is off."""

    status: RateStatus | None
    rules: tuple[RateLimitRule, ...] = field(default=())

    @property
    def retry_after_s(self) -> int:
        """0 when the check may go ahead, else the seconds to wait."""
        return 0 if self.status is None else self.status.retry_after_s

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` (and ``Retry-After`` when refused)."""
        return {} if self.status is None else self.status.headers()


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    shared_state: SharedState
    failures_per_account: int = 10  # 0: no limit
    account_window_s: int = 900
    failures_per_ip: int = 100  # 0: no limit
    ip_window_s: int = 300

    @classmethod
    def from_settings(cls, shared_state: SharedState, settings: Settings) -> LoginThrottle:
        return cls(
            shared_state,
            failures_per_account=settings.login_failures_per_account,
            account_window_s=settings.login_account_window_s,
            failures_per_ip=settings.login_failures_per_ip,
            ip_window_s=settings.login_ip_window_s,
        )

    def _rules(self, username: str, client_ip: str) -> tuple[RateLimitRule, ...]:
        rules = []
        if self.failures_per_account:
            account = username.strip().lower()
            rules.append(
                RateLimitRule(
                    f"login:user:{account}", self.failures_per_account, self.account_window_s
                )
            )
        if self.failures_per_ip:
            rules.append(
                RateLimitRule(f"login:ip:{client_ip}", self.failures_per_ip, self.ip_window_s)
            )
        return tuple(rules)

    async def attempt(self, username: str, client_ip: str) -> LoginAttempt:
        """Take a failure slot from the account's and the IP's counters before
        checking a password. Refused (``retry_after_s`` > 0, nothing taken)
        when either is full: then the password must not be checked."""
        rules = self._rules(username, client_ip)
        if not rules:
            return LoginAttempt(None)
        verdict = await self.shared_state.hit_rate_limits(_APP, rules)
        assert verdict.rate is not None, "a check with limits reports their status"
        return LoginAttempt(verdict.rate, rules)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: it was no failure. The account's failures
        are cleared and the IP's slot is given back."""
        if not attempt.rules or attempt.retry_after_s:
            return
        account = [r.key for r in attempt.rules if r.key.startswith("login:user:")]
        ip = [r for r in attempt.rules if r.key.startswith("login:ip:")]
        await self.shared_state.release_rate_limits(_APP, ip, clear=account)
