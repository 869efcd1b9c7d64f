"""Request signatures (PROTOCOL §3.2).

Every parameter but ``sig`` — the method included — sorted by key as UTF-8
bytes, concatenated as ``key=value`` with no separator (raw UTF-8 values).
``md5`` hashes that followed by the secret; ``hmac-sha256`` keys an HMAC with
the secret. The secret is the app secret, or the ``session_secret`` when the
call carries a ``session_key``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

__all__ = ["SignMethod", "canonical_string", "sign"]

SignMethod = Literal["md5", "hmac-sha256"]


def canonical_string(params: Iterable[tuple[str, str]]) -> bytes:
    """§3.2 steps 1–3: the bytes that are signed."""
    pairs = sorted(
        ((key.encode("utf-8"), value.encode("utf-8")) for key, value in params if key != "sig"),
        key=lambda pair: pair[0],
    )
    return b"".join(key + b"=" + value for key, value in pairs)


def sign(params: Iterable[tuple[str, str]], secret: str, sign_method: SignMethod = "md5") -> str:
    """§3.2 step 4: the lowercase hex signature of ``params`` under ``secret``."""
    message = canonical_string(params)
    key = secret.encode("utf-8")
    if sign_method == "hmac-sha256":
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.md5(message + key, usedforsecurity=False).hexdigest()
