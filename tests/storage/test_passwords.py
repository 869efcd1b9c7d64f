from __future__ import annotations

import time
from collections.abc import Callable

from openplatform.storage.passwords import (
    hash_password,
    needs_rehash,
    verify_dummy,
    verify_password,
)


def test_hash_is_argon2id_and_salted() -> None:
    first = hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert "correct horse" not in first
    assert hash_password("correct horse") != first
    assert not needs_rehash(first)


def test_verify() -> None:
    stored = hash_password("pässwörd")
    assert verify_password(stored, "pässwörd")
    assert not verify_password(stored, "passwort")
    assert not verify_password("not a hash", "pässwörd")
    assert needs_rehash("not a hash")


def test_dummy_verification_takes_as_long_as_a_real_one() -> None:
    stored = hash_password("pw")

    def best_of_five(action: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return min(times)

    dummy = best_of_five(lambda: verify_dummy("wrong"))
    real = best_of_five(lambda: verify_password(stored, "wrong"))
    assert 0.5 < dummy / real < 2.0
