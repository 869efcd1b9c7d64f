"""Parameters of an open-API call (PROTOCOL §3): the query string and the
``application/x-www-form-urlencoded`` body, decoded as strict UTF-8.

Parsing never raises and never drops or truncates anything: every pair as
sent is kept (so the count of check 3 and the ``request_args`` echo are
exact), and the first malformation found is remembered for check 4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_BODY_BYTES", "FormParams", "parse_urlencoded"]

MAX_BODY_BYTES = 1024 * 1024

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


@dataclass(slots=True)
class FormParams:
    """Decoded ``(key, value)`` pairs in the order sent, and the first problem."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None

    def note(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem


def _decode(raw: bytes, into: FormParams, what: str) -> str:
    if b"%" in raw:
        if _BAD_PERCENT.search(raw):
            into.note(f"malformed percent-encoding in a {what}")
        raw = unquote_to_bytes(raw.replace(b"+", b" "))
    elif b"+" in raw:
        raw = raw.replace(b"+", b" ")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        into.note(f"a {what} is not valid UTF-8")
        return raw.decode("utf-8", "replace")


def parse_urlencoded(data: bytes, into: FormParams) -> None:
    """Append the pairs of ``data`` (``a=1&b=2``; ``+`` and ``%20`` are spaces).

    Empty segments (``a=1&&b=2``) carry nothing and are skipped; a segment
    without ``=`` is a key with an empty value.
    """
    if not data:
        return
    for segment in data.split(b"&"):
        if not segment:
            continue
        raw_key, _, raw_value = segment.partition(b"=")
        key = _decode(raw_key, into, "parameter name")
        value = _decode(raw_value, into, "parameter value")
        into.pairs.append((key, value))
