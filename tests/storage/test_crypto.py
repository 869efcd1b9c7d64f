from __future__ import annotations

import hashlib

import pytest

from openplatform.storage.crypto import (
    SecretBox,
    SecretKeyMismatch,
    hash_token,
    new_secret,
    new_token,
)


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(hash_token("x")) == 64


def test_new_token_has_at_least_256_bits() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    # 32 bytes in URL-safe base64 without padding: 43 characters.
    assert all(len(token) >= 43 for token in tokens)
    with pytest.raises(ValueError, match="256 bits"):
        new_token(16)


def test_new_secret_is_64_hex_digits() -> None:
    secret = new_secret()
    assert len(secret) == 64
    int(secret, 16)


def test_secret_box_round_trip_and_no_plaintext() -> None:
    box = SecretBox("key material")
    ciphertext = box.encrypt("s3cr3t-value")
    assert "s3cr3t-value" not in ciphertext
    assert box.decrypt(ciphertext) == "s3cr3t-value"
    # Fernet is randomized: the same plaintext encrypts differently.
    assert box.encrypt("s3cr3t-value") != ciphertext
    assert SecretBox("key material").decrypt(ciphertext) == "s3cr3t-value"


def test_secret_box_wrong_key_is_a_clear_error() -> None:
    ciphertext = SecretBox("one key").encrypt("value")
    with pytest.raises(SecretKeyMismatch, match="OPENPLATFORM_SECRET_KEY"):
        SecretBox("another key").decrypt(ciphertext)
    with pytest.raises(SecretKeyMismatch):
        SecretBox("one key").decrypt("not a fernet token")


def test_secret_box_hides_its_key() -> None:
    assert "material" not in repr(SecretBox("material"))
    with pytest.raises(ValueError, match="empty"):
        SecretBox("")


def test_several_keys_newest_encrypts_any_decrypts() -> None:
    old, both, new = SecretBox("old-key"), SecretBox("new-key, old-key"), SecretBox("new-key")
    under_old = old.encrypt("s3cret")
    assert both.decrypt(under_old) == "s3cret"
    assert not both.is_current(under_old)
    rotated = both.rotate(under_old)
    assert both.is_current(rotated)
    assert new.decrypt(rotated) == "s3cret"  # the old key may now go
    assert new.decrypt(both.encrypt("x")) == "x"  # new secrets use the newest key
    with pytest.raises(SecretKeyMismatch):
        new.decrypt(under_old)
    with pytest.raises(ValueError, match="empty"):
        SecretBox(" , ")
