"""When a failed call is sent again, and after how long — in one place.

The rule (also in the project README, "Python SDK"):

- **4** (rate limited) is answered by check 13 of PROTOCOL §3.3, before the
  method runs: any call is sent again, after ``Retry-After``.
- **103** (``call_id`` not above the last accepted one) is check 11, also
  before the method: concurrent calls of one client overtake each other on
  the way. Any call is re-signed with a new (higher) ``call_id`` and sent at
  once, up to ``max_call_id_retries`` times, apart from ``max_retries``.
- A connection that was never made (refused, connect or pool timeout): the
  request never left, so any call is sent again.
- **2** (service unavailable) comes from maintenance (check 1, before the
  method) or from an outage in the middle of a method, and the client cannot
  tell which; **805** says nothing was half-written, but not whether the
  write committed before the answer was lost. A timeout or a connection lost
  after sending leaves the same doubt. So these are sent again only for
  idempotent calls (:data:`IDEMPOTENT_METHODS`, or ``idempotent=True``).
- Nothing else is retried: it would fail again the same way.

Every retry is a new request: a fresh ``timestamp``, a new ``call_id`` and a
new signature (the old request would be a replay, 107). The wait doubles
from ``initial_delay`` up to ``max_delay``; a ``Retry-After`` from the server
replaces it (at least that long), and one longer than ``max_retry_after`` is
not waited for — the error is raised with its ``retry_after``. Waits grow by
up to ``jitter`` (a fraction) at random, so that clients refused together do
not come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from openplatform_client._exceptions import (
    APIConnectionError,
    DatabaseError,
    OpenPlatformError,
    RateLimitError,
    ServiceUnavailableError,
)

__all__ = ["RetryPolicy"]

_CALL_ID_NOT_INCREASING = 103


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently failed calls are sent again."""

    max_retries: int = 2
    max_call_id_retries: int = 10
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be 0 or more")

    def resign(self, error: OpenPlatformError, resigns_done: int) -> bool:
        """Whether to send the call again at once with a new ``call_id`` (103)."""
        code = getattr(error, "code", None)
        return code == _CALL_ID_NOT_INCREASING and resigns_done < self.max_call_id_retries

    @staticmethod
    def may_resend(error: OpenPlatformError, idempotent: bool) -> bool:
        """Whether sending the call again cannot do twice what it did once."""
        if isinstance(error, RateLimitError):
            return True
        if isinstance(error, APIConnectionError):
            return idempotent or not error.request_sent
        if isinstance(error, ServiceUnavailableError | DatabaseError):
            return idempotent
        return False

    def delay(self, error: OpenPlatformError, retries_done: int, idempotent: bool) -> float | None:
        """Seconds to wait before retry number ``retries_done + 1``, or None
        when the error is to be raised."""
        if retries_done >= self.max_retries or not self.may_resend(error, idempotent):
            return None
        retry_after: float | None = getattr(error, "retry_after", None)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            base = retry_after
        else:
            base = min(self.initial_delay * 2**retries_done, self.max_delay)
        return base * (1 + self.jitter * random.random())
