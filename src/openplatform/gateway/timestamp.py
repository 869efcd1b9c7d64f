"""Check 9 of PROTOCOL §3.3: the ``timestamp`` parameter and its window."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from openplatform.errors import ApiError, Code

__all__ = ["check_timestamp", "parse_timestamp"]

_UNIX = re.compile(r"[0-9]{1,12}")
_LOCAL = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")


def parse_timestamp(text: str, tz: ZoneInfo) -> int | None:
    """Unix seconds, or ``YYYY-MM-DD HH:MM:SS`` in the platform time zone ``tz``."""
    if _UNIX.fullmatch(text):
        return int(text)
    match = _LOCAL.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return int(moment.timestamp())


def check_timestamp(text: str | None, *, now: int, window_s: int, tz: ZoneInfo) -> int:
    """The call's time in Unix seconds; missing, unparseable or outside
    ±``window_s`` of ``now`` is 107, with the server time in ``error_detail``."""
    detail = f"server time {now} (Unix seconds); timestamp must be within {window_s} s of it"
    if text is None:
        raise ApiError(Code.INVALID_TIMESTAMP, "timestamp is required; " + detail)
    value = parse_timestamp(text, tz)
    if value is None:
        raise ApiError(Code.INVALID_TIMESTAMP, "timestamp is malformed; " + detail)
    if abs(value - now) > window_s:
        raise ApiError(Code.INVALID_TIMESTAMP, "timestamp is outside the window; " + detail)
    return value
