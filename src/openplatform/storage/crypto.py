"""Secrets at rest (PROTOCOL §2: "stored only as hashes"; app and session
secrets "stored encrypted").

This module is the one place tokens are hashed and generated, and the one
place reversible secrets are encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from openplatform.storage.errors import StorageError

__all__ = ["SecretBox", "SecretKeyMismatch", "hash_token", "key_list", "new_secret", "new_token"]

_HKDF_INFO = b"openplatform secret box v1"


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token, code, session key or admin
    token is stored. Tokens carry ≥ 256 bits of randomness, so an unsalted fast
    hash is enough: the stored value cannot be turned back into a usable token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(nbytes: int = 32) -> str:
    """An opaque bearer value (access/refresh token, code, session key): URL-safe
    text from ``nbytes`` random bytes (≥ 32, i.e. ≥ 256 bits)."""
    if nbytes < 32:
        raise ValueError("tokens carry at least 256 bits of randomness")
    return secrets.token_urlsafe(nbytes)


def new_secret() -> str:
    """A shared signing secret (app or session secret, PROTOCOL §3.2): 64 lowercase
    hex digits, 256 bits."""
    return secrets.token_hex(32)


class SecretKeyMismatch(StorageError):
    """A stored secret cannot be decrypted: ``OPENPLATFORM_SECRET_KEY`` (or the key
    file in the data directory) is not the key it was encrypted with."""


def key_list(key_material: str) -> list[str]:
    """``OPENPLATFORM_SECRET_KEY`` (or the key file): one key, or several
    separated by commas — the newest first, then the older ones still
    accepted while stored secrets are re-encrypted (``openplatform secrets
    rotate``)."""
    keys = [key.strip() for key in key_material.split(",") if key.strip()]
    if not keys:
        raise ValueError("secret key material is empty")
    return keys


class SecretBox:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) under keys
    derived from ``OPENPLATFORM_SECRET_KEY`` with HKDF-SHA256 (RFC 5869), so any
    string of enough entropy serves as key material. With several keys
    (``new,old``) it encrypts with the first and decrypts with any
    (``MultiFernet``)."""

    def __init__(self, key_material: str) -> None:
        self._fernets = [Fernet(_derive(key)) for key in key_list(key_material)]
        self._fernet = MultiFernet(self._fernets)

    def __repr__(self) -> str:
        return f"SecretBox(<{len(self._fernets)} key(s) hidden>)"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretKeyMismatch(
                "cannot decrypt a stored secret: OPENPLATFORM_SECRET_KEY (or secret.key in "
                "the data directory) lists no key the database was written with"
            ) from None

    def is_current(self, ciphertext: str) -> bool:
        """Whether ``ciphertext`` is encrypted with the newest key."""
        try:
            self._fernets[0].decrypt(ciphertext.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        """``ciphertext`` encrypted again with the newest key (same plaintext)."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise SecretKeyMismatch(
                "cannot re-encrypt a stored secret: no key of OPENPLATFORM_SECRET_KEY opens it"
            ) from None


def _derive(key: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        key.encode("utf-8")
    )
    return base64.urlsafe_b64encode(derived)
