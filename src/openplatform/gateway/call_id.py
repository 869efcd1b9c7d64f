"""Check 11 of PROTOCOL §3.3: the ``call_id`` parameter's form, and the key
under which its high-water mark is kept."""

from __future__ import annotations

import re

from openplatform.errors import ApiError, Code
from openplatform.storage.crypto import hash_token

__all__ = ["MAX_CALL_ID_DIGITS", "call_id_key", "check_call_id"]

MAX_CALL_ID_DIGITS = 40
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_CALL_ID_DIGITS}}}")


def check_call_id(text: str | None, *, required: bool) -> str | None:
    """The ``call_id`` to compare (ASCII digits, at most 40), or None when the
    call has none and the app does not require one; else 103."""
    if text is None:
        if required:
            raise ApiError(Code.INVALID_CALL_ID, "this app requires a call_id")
        return None
    if not _DIGITS.fullmatch(text):
        raise ApiError(
            Code.INVALID_CALL_ID,
            f"call_id must be a whole number of at most {MAX_CALL_ID_DIGITS} digits",
        )
    return text


def call_id_key(*, session_key: str | None, access_token: str | None) -> str:
    """``call_id`` increases per (app, credential presented): the session key,
    the access token, or the app alone. Credentials appear only as hashes."""
    if session_key is not None:
        return "s:" + hash_token(session_key)[:32]
    if access_token is not None:
        return "t:" + hash_token(access_token)[:32]
    return "app"
