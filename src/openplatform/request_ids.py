"""Request ids (``X-Request-Id``): the one a trusted front end sent, when it is
well formed, else a new one — unique across processes and hosts, cheap to
make (every answer carries one, on the hot path too)."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable

__all__ = ["new_request_id", "request_id_for"]

_GIVEN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class _Source:
    """A random prefix per process (made again after a fork) and a counter:
    ids never repeat, and making one costs a fraction of ``uuid4``."""

    __slots__ = ("counter", "pid", "prefix")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)


_source = _Source()


def new_request_id() -> str:
    global _source
    if _source.pid != os.getpid():
        _source = _Source()
    return f"{_source.prefix}{next(_source.counter):08x}"


def request_id_for(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's ``X-Request-Id`` if it is 1-64 characters of
    ``[A-Za-z0-9._-]``, else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _GIVEN.fullmatch(candidate):
                return candidate
            break
    return new_request_id()
