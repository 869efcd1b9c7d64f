"""RFC 7636 PKCE: S256 only, verifier checked in constant time."""

from __future__ import annotations

import pytest

from openplatform.errors import Code, OAuthError
from openplatform.oauth.rfc7636 import s256_challenge, validate_challenge, verify_code_verifier

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_the_rfc_appendix_b_example() -> None:
    assert s256_challenge(VERIFIER) == CHALLENGE


def test_s256_challenge_is_accepted() -> None:
    assert validate_challenge(CHALLENGE, "S256", required=True) == CHALLENGE


@pytest.mark.parametrize("method", ["plain", None, "s256", "S512"])
def test_other_methods_are_refused(method: str | None) -> None:
    with pytest.raises(OAuthError) as info:
        validate_challenge(CHALLENGE, method, required=False)
    assert info.value.code == Code.INVALID_REQUEST


def test_missing_challenge_refused_when_required_and_allowed_otherwise() -> None:
    with pytest.raises(OAuthError) as info:
        validate_challenge(None, None, required=True)
    assert info.value.code == Code.INVALID_REQUEST
    assert validate_challenge(None, None, required=False) is None


@pytest.mark.parametrize("challenge", ["short", CHALLENGE + "A", CHALLENGE[:-1] + "="])
def test_malformed_challenge_refused(challenge: str) -> None:
    with pytest.raises(OAuthError):
        validate_challenge(challenge, "S256", required=True)


def test_matching_verifier_passes() -> None:
    verify_code_verifier(VERIFIER, CHALLENGE)
    verify_code_verifier(None, None)


@pytest.mark.parametrize(
    ("verifier", "challenge"),
    [
        (None, CHALLENGE),  # missing
        ("x" * 43, CHALLENGE),  # wrong
        ("short", s256_challenge("short")),  # too short for §4.1
        (VERIFIER, None),  # downgrade: verifier for a code without PKCE
    ],
)
def test_missing_or_wrong_verifier_is_invalid_grant(
    verifier: str | None, challenge: str | None
) -> None:
    with pytest.raises(OAuthError) as info:
        verify_code_verifier(verifier, challenge)
    assert info.value.code == Code.INVALID_GRANT
