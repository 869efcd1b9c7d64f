"""Parameters of an open-API call (PROTOCOL §3): the query string and the
``application/x-www-form-urlencoded`` body, decoded as strict UTF-8.

Parsing never raises and never truncates a value; every pair as sent is
counted (check 3 is exact) and kept — unless the caller caps how many are
kept (``keep``): then the pairs past the cap are counted, not decoded, but
the first of each key in ``also_keep`` still is. A megabyte of ``a&a&…``
would otherwise be half a million pairs in memory, some 36 MiB for a request
that check 3 refuses anyway. The first malformation found among the decoded
pairs is remembered for check 4.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_BODY_BYTES", "FormParams", "parse_urlencoded"]

MAX_BODY_BYTES = 1024 * 1024

_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_SEGMENT = re.compile(rb"[^&]+")


@dataclass(slots=True)
class FormParams:
    """Decoded ``(key, value)`` pairs in the order sent, and the first problem."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None
    count: int = 0  # every pair sent, kept or not
    keep: int | None = None  # keep at most this many pairs in order (None: all)
    also_keep: frozenset[str] = frozenset()  # past ``keep``: the first of each of these

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
    segments: Iterable[bytes]
    if into.keep is not None and data.count(b"&") >= into.keep:
        # many segments: one at a time, not a list of them all
        segments = (match.group() for match in _SEGMENT.finditer(data))
    else:
        segments = data.split(b"&")
    missing: set[str] | None = None  # of also_keep, once past keep
    for segment in segments:
        if not segment:
            continue
        into.count += 1
        raw_key, _, raw_value = segment.partition(b"=")
        if into.keep is not None and len(into.pairs) >= into.keep:
            if missing is None:
                missing = set(into.also_keep).difference(key for key, _ in into.pairs)
            if not missing:
                continue
            escaped = b"%" in raw_key or b"+" in raw_key
            wanted = _decode(raw_key, FormParams(), "") if escaped else raw_key.decode("latin-1")
            if wanted not in missing:
                continue
            missing.discard(wanted)
        key = _decode(raw_key, into, "parameter name")
        value = _decode(raw_value, into, "parameter value")
        into.pairs.append((key, value))
