"""The error catalogue (PROTOCOL §1): codes, OAuth names, HTTP status, zh/en text.

The text lives in ``catalogue.json`` beside this module, loaded once; code
refers to errors by :class:`Code` and raises :class:`ApiError` or
:class:`OAuthError`. One renderer (``openplatform.errors.render``) turns them
into response bodies.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

__all__ = [
    "CATALOGUE",
    "ApiError",
    "Code",
    "Entry",
    "Lang",
    "OAuthError",
    "entry",
]

Lang = Literal["en", "zh"]
Family = Literal["oauth", "api"]


class Code(enum.IntEnum):
    """Every code of the catalogue, by name."""

    # OAuth family (PROTOCOL §2)
    INVALID_REQUEST = 10000
    INVALID_CLIENT = 10001
    INVALID_GRANT = 10002
    UNAUTHORIZED_CLIENT = 10003
    UNSUPPORTED_GRANT_TYPE = 10004
    INVALID_SCOPE = 10005
    EXPIRED_TOKEN = 10006
    REDIRECT_URI_MISMATCH = 10007
    UNSUPPORTED_RESPONSE_TYPE = 10008
    ACCESS_DENIED = 10009
    # open API family (PROTOCOL §3, §4, §5)
    SUCCESS = 0
    UNKNOWN = 1
    SERVICE_UNAVAILABLE = 2
    UNSUPPORTED_METHOD = 3
    REQUEST_LIMIT_REACHED = 4
    UNAUTHORIZED_CLIENT_IP = 5
    NO_PERMISSION_USER_DATA = 6
    NO_PERMISSION_REFERER = 7
    INVALID_PARAMETER = 100
    INVALID_API_KEY = 101
    INVALID_SESSION_KEY = 102
    INVALID_CALL_ID = 103
    INCORRECT_SIGNATURE = 104
    TOO_MANY_PARAMETERS = 105
    UNSUPPORTED_SIGNATURE_METHOD = 106
    INVALID_TIMESTAMP = 107
    INVALID_USER_ID = 108
    INVALID_USER_FIELD = 109
    INVALID_ACCESS_TOKEN = 110
    ACCESS_TOKEN_EXPIRED = 111
    SESSION_KEY_EXPIRED = 112
    INVALID_IP = 114
    USER_NOT_VISIBLE = 210
    UNSUPPORTED_PERMISSION = 211
    NO_PERMISSION_EMAIL = 212
    DATA_STORE_UNKNOWN = 800
    INVALID_OPERATION = 801
    QUOTA_EXCEEDED = 802
    OBJECT_NOT_FOUND = 803
    OBJECT_EXISTS = 804
    DATABASE_ERROR = 805
    NO_SUCH_APPLICATION = 900
    BATCH_ALREADY_STARTED = 950
    BATCH_NOT_STARTED = 951
    BATCH_TOO_MANY_ITEMS = 952
    METHOD_NOT_BATCHABLE = 953


@dataclass(frozen=True, slots=True)
class Entry:
    """One catalogue entry."""

    code: int
    family: Family
    error: str | None
    http_status: int
    en: str
    zh: str

    def message(self, lang: Lang, fill: str | None = None) -> str:
        """The catalogue text in ``lang``, its ``%s`` (if any) filled with ``fill``."""
        text = self.zh if lang == "zh" else self.en
        if "%s" in text:
            text = text.replace("%s", fill or "")
        return text


def _load() -> dict[int, Entry]:
    raw = resources.files(__package__).joinpath("catalogue.json").read_text("utf-8")
    entries = {item["code"]: Entry(**item) for item in json.loads(raw)}
    missing = {int(c) for c in Code} ^ set(entries)
    if missing:
        raise RuntimeError(f"error catalogue and Code enum disagree on {sorted(missing)}")
    return entries


CATALOGUE: dict[int, Entry] = _load()


def entry(code: int) -> Entry:
    """The catalogue entry of ``code``."""
    return CATALOGUE[code]


class ApiError(Exception):
    """An open-API error (PROTOCOL §1, API family), raised deep and rendered once.

    ``fill`` replaces the catalogue's ``%s``; ``detail`` becomes ``error_detail``;
    ``headers`` are extra response headers (``Retry-After``, rate-limit headers);
    ``field`` is the path of the input at fault (``ip_allowlist[1]``), for forms
    that show the message next to it.
    """

    def __init__(
        self,
        code: Code,
        detail: str | None = None,
        *,
        fill: str | None = None,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.fill = fill
        self.headers = headers or {}
        self.field = field
        super().__init__(f"{int(code)} {entry(code).en}" + (f": {detail}" if detail else ""))

    @property
    def http_status(self) -> int:
        return entry(self.code).http_status


class OAuthError(Exception):
    """An OAuth error (PROTOCOL §2, codes 10000-10009).

    ``redirectable`` is False for the errors that must never redirect back to
    the client (unknown client, unregistered redirect URI; RFC 6749 §4.1.2.1).
    ``basic_auth_failed`` turns 10001 into HTTP 401 with ``WWW-Authenticate``.
    ``headers`` are extra response headers (``Retry-After``, rate-limit headers).
    """

    def __init__(
        self,
        code: Code,
        description: str | None = None,
        *,
        redirectable: bool = True,
        basic_auth_failed: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        if entry(code).family != "oauth":
            raise ValueError(f"{code!r} is not an OAuth error code")
        self.code = code
        self.description = description
        self.redirectable = redirectable
        self.basic_auth_failed = basic_auth_failed
        self.headers = headers or {}
        super().__init__(f"{int(code)} {self.error}" + (f": {description}" if description else ""))

    @property
    def error(self) -> str:
        name = entry(self.code).error
        assert name is not None
        return name

    @property
    def http_status(self) -> int:
        return 401 if self.basic_auth_failed else entry(self.code).http_status
