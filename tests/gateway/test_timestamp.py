"""The timestamp window (PROTOCOL §3.3 check 9)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from openplatform.errors import ApiError, Code
from openplatform.gateway.timestamp import check_timestamp, parse_timestamp

UTC = ZoneInfo("UTC")
NOW = 1_700_000_000


def test_unix_seconds_and_local_time() -> None:
    assert parse_timestamp("1700000000", UTC) == NOW
    assert parse_timestamp("2023-11-14 22:13:20", UTC) == NOW
    assert parse_timestamp("2023-11-15 06:13:20", ZoneInfo("Asia/Shanghai")) == NOW


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1700000000.5", "-5", "2023-13-01 00:00:00", "2023-11-14T22:13:20", "１２３"],
)
def test_malformed(text: str) -> None:
    assert parse_timestamp(text, UTC) is None


@pytest.mark.parametrize("offset", [-600, 0, 600])
def test_inside_the_window(offset: int) -> None:
    assert check_timestamp(str(NOW + offset), now=NOW, window_s=600, tz=UTC) == NOW + offset


@pytest.mark.parametrize("text", [None, "x", str(NOW - 601), str(NOW + 601)])
def test_outside_missing_or_malformed_is_107_with_server_time(text: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        check_timestamp(text, now=NOW, window_s=600, tz=UTC)
    assert caught.value.code == Code.INVALID_TIMESTAMP
    assert caught.value.detail is not None
    assert f"server time {NOW}" in caught.value.detail
