"""Access to the real PostgreSQL and Redis servers the tests run against.

A test that needs a service skips when it is absent — unless
``OPENPLATFORM_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns that skip
into a failure so CI can never pass without having run them.
"""

from __future__ import annotations

import os
import socket

import pytest

PG_HOST = os.environ.get("OPENPLATFORM_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OPENPLATFORM_TEST_PG_PORT", "5432"))
REDIS_HOST = os.environ.get("OPENPLATFORM_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("OPENPLATFORM_TEST_REDIS_PORT", "6379"))


def services_required() -> bool:
    return os.environ.get("OPENPLATFORM_REQUIRE_SERVICES", "") not in ("", "0")


def service_unavailable(name: str, why: str) -> None:
    """Skip (service not running) or fail (when services are required)."""
    message = f"{name} is not reachable: {why}"
    if services_required():
        pytest.fail(f"{message} (OPENPLATFORM_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)  # the service is not reachable: skip unless required


def port_open(host: str, port: int) -> str | None:
    """None when something listens at host:port, else the reason it does not."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return str(exc)
