"""RFC 7636: Proof Key for Code Exchange. Only ``S256`` is accepted
(RFC 9700 §2.1.1: ``plain`` offers no protection when the request leaks)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from openplatform.errors import Code, OAuthError

__all__ = ["SUPPORTED_METHODS", "s256_challenge", "validate_challenge", "verify_code_verifier"]

SUPPORTED_METHODS = ("S256",)

# §4.1: code-verifier = 43*128unreserved
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# §4.2: BASE64URL(SHA256(...)) without padding is exactly 43 characters.
_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256_challenge(verifier: str) -> str:
    """§4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def validate_challenge(challenge: str | None, method: str | None, *, required: bool) -> str | None:
    """§4.3 at /authorize: the challenge to bind to the code, or None.

    A missing challenge when PKCE is required, ``plain`` or any other method,
    or a malformed challenge is ``invalid_request`` (§4.4.1)."""
    if challenge is None:
        if method is not None:
            raise OAuthError(Code.INVALID_REQUEST, "code_challenge_method without code_challenge")
        if required:
            raise OAuthError(Code.INVALID_REQUEST, "code_challenge (PKCE, S256) is required")
        return None
    if method is None:
        # §4.3 defaults to "plain", which this server refuses.
        raise OAuthError(Code.INVALID_REQUEST, "code_challenge_method must be S256")
    if method not in SUPPORTED_METHODS:
        raise OAuthError(Code.INVALID_REQUEST, "code_challenge_method must be S256")
    if not _S256_CHALLENGE.match(challenge):
        raise OAuthError(Code.INVALID_REQUEST, "malformed code_challenge")
    return challenge


def verify_code_verifier(verifier: str | None, challenge: str | None) -> None:
    """§4.6 at the token endpoint: a code bound to a challenge needs the matching
    verifier; a verifier for a code without one is refused too (RFC 9700
    §2.1.1, PKCE downgrade). Any mismatch is ``invalid_grant``."""
    if challenge is None:
        if verifier is not None:
            raise OAuthError(Code.INVALID_GRANT, "code_verifier given for a code without PKCE")
        return
    if verifier is None:
        raise OAuthError(Code.INVALID_GRANT, "code_verifier is required")
    if not _VERIFIER.match(verifier):
        raise OAuthError(Code.INVALID_GRANT, "malformed code_verifier")
    if not hmac.compare_digest(s256_challenge(verifier).encode(), challenge.encode()):
        raise OAuthError(Code.INVALID_GRANT, "code_verifier does not match the code_challenge")
