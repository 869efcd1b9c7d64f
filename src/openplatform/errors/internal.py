"""Failures inside the platform, as callers see them (PROTOCOL §1: codes 1,
2, 800 and 805).

A caller on the internet gets the catalogue code, a plain sentence and the
request id — never a host, a port, a driver's message or SQL text: those
describe the platform's insides to anyone who can make it fail. The cause is
logged here, server-side, under the same request id, so an operator finds it
from the id a developer reports. Every place that turns an internal failure
into an answer (gateway, the application's last-resort handler, the data
store) goes through :func:`internal_failure`.
"""

from __future__ import annotations

import logging

from openplatform.errors import ApiError, Code

__all__ = ["PLAIN_SENTENCES", "RETRY_AFTER_S", "internal_failure"]

log = logging.getLogger("openplatform.failures")

PLAIN_SENTENCES: dict[Code, str] = {
    Code.UNKNOWN: "the server failed to answer this request",
    Code.SERVICE_UNAVAILABLE: "a service the platform depends on is not answering; retry later",
    Code.DATA_STORE_UNKNOWN: "the data store failed to complete this request",
    Code.DATABASE_ERROR: "the database did not complete this request; nothing was written; retry",
}
RETRY_AFTER_S = 5  # for 2 and 805: outages are seconds long (a restart, a failover)


def internal_failure(code: Code, request_id: str, cause: BaseException | None = None) -> ApiError:
    """The answer to a failure inside the platform: ``code`` (1, 2, 800 or
    805) with a plain sentence and ``request_id`` as ``error_detail``. The
    cause is logged under ``request_id`` (with its traceback for 1 and 800,
    the unexpected ones)."""
    sentence = PLAIN_SENTENCES[code]
    if code in (Code.UNKNOWN, Code.DATA_STORE_UNKNOWN):
        log.error("answering %d to request %s", code, request_id, exc_info=cause)
    else:
        log.warning("answering %d to request %s: %s", code, request_id, cause)
    headers = {}
    if code in (Code.SERVICE_UNAVAILABLE, Code.DATABASE_ERROR):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    return ApiError(code, f"{sentence} (request id {request_id})", headers=headers)
