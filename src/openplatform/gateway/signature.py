"""Request signatures of the open API (PROTOCOL §3.2).

The canonical string is every parameter except ``sig``, after form decoding,
sorted by key as UTF-8 bytes and concatenated as ``key=value`` with no
separator. ``md5`` appends the secret and hashes; ``hmac-sha256`` keys an HMAC
with it. The method is always signed: when it came from the path only, the
caller adds ``method=<name>`` before signing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "SIGN_METHODS",
    "SignMethod",
    "canonical_string",
    "sign",
    "verify_signature",
]

SignMethod = Literal["md5", "hmac-sha256"]
SIGN_METHODS: tuple[SignMethod, ...] = ("md5", "hmac-sha256")


def canonical_string(params: Iterable[tuple[str, str]]) -> bytes:
    """§3.2 steps 1-3: the bytes that are signed (``sig`` excluded)."""
    encoded = sorted(
        ((key.encode("utf-8"), value.encode("utf-8")) for key, value in params if key != "sig"),
        key=lambda pair: pair[0],
    )
    return b"".join(key + b"=" + value for key, value in encoded)


def sign(params: Iterable[tuple[str, str]], secret: str, sign_method: SignMethod = "md5") -> str:
    """§3.2 step 4: the lowercase hex signature of ``params`` under ``secret``."""
    message = canonical_string(params)
    key = secret.encode("utf-8")
    if sign_method == "hmac-sha256":
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.md5(message + key, usedforsecurity=False).hexdigest()


def verify_signature(
    params: Iterable[tuple[str, str]], sig: str, secret: str, sign_method: SignMethod = "md5"
) -> bool:
    """True when ``sig`` is the signature of ``params``; compared in constant time."""
    expected = sign(params, secret, sign_method)
    return hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8"))
