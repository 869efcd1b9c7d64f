"""The service skips turn into failures when OPENPLATFORM_REQUIRE_SERVICES=1."""

from __future__ import annotations

import pytest

from tests.services import service_unavailable


def test_missing_service_skips_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENPLATFORM_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        service_unavailable("PostgreSQL", "connection refused")


def test_missing_service_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENPLATFORM_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="OPENPLATFORM_REQUIRE_SERVICES=1"):
        service_unavailable("Redis", "connection refused")
