"""User passwords, hashed with Argon2id (RFC 9106) via argon2-cffi.

Hashing is CPU-bound (tens of milliseconds by design): async callers run these
functions in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "needs_rehash", "verify_dummy", "verify_password"]

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """The encoded Argon2id hash (parameters and salt included) of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; never raises for a mismatch
    or a malformed stored hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# A hash of a random password nobody knows, made with today's parameters, so
# that even the first dummy verification costs no extra hashing.
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$komk/+abd6/khYLaXVo3Mw"
    "$IOSLfmA72Xv1H8J5HNlIHwUCMDm3NDMUDBvGZScZI8E"
)


@functools.cache
def _dummy_hash() -> str:
    if needs_rehash(_DUMMY_HASH):  # the parameters changed: match them
        return _hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def verify_dummy(password: str) -> None:
    """Spend the time of one verification for a user that does not exist (or is
    disabled), so response time does not reveal which usernames exist."""
    verify_password(_dummy_hash(), password)
