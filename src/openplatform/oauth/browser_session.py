"""The browser side of /authorize: a signed sign-in cookie and CSRF tokens.

No server-side session store: the sign-in cookie carries the user id, the
time of sign-in and the user's session epoch, signed with HMAC-SHA256 under a
key derived from the platform secret (``Settings.secret_key_material``; with
several keys listed, the newest signs and any verifies). A
password change or disabling the user moves their epoch on (PROTOCOL §5), so
every cookie issued before is void. The CSRF token is the
double-submit pattern with a signed twist: a random value in an HttpOnly
cookie, and in every form an HMAC of that value — a cross-site page can make
the browser send the cookie but can neither read it nor compute the token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from openplatform.storage.crypto import key_list

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "BrowserSessions", "SignedIn"]

SESSION_COOKIE = "op_session"
CSRF_COOKIE = "op_csrf"


def _same(given: str, expected: str) -> bool:
    """Constant-time equality of a value from the request (any characters: a
    cookie or form field may hold non-ASCII) and an expected one."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


@dataclass(frozen=True, slots=True)
class SignedIn:
    uid: int
    signed_in_at: int
    session_epoch: int


class BrowserSessions:
    def __init__(self, key_material: str, *, max_age_s: int = 8 * 3600) -> None:
        # One MAC key per secret key (newest first): cookies and forms are
        # signed with the newest and accepted under any listed key, so a key
        # rotation signs nobody out; a key dropped from the list voids what
        # it signed (sign-in cookies live max_age_s at most).
        self._keys = [
            hmac.new(
                key.encode("utf-8"), b"openplatform browser session v1", hashlib.sha256
            ).digest()
            for key in key_list(key_material)
        ]
        self.max_age_s = max_age_s

    def _mac(self, purpose: str, value: str, key: bytes | None = None) -> str:
        message = f"{purpose}|{value}".encode("utf-8", "replace")
        return hmac.new(key or self._keys[0], message, hashlib.sha256).hexdigest()

    def _verified(self, purpose: str, value: str, mac: str) -> bool:
        """Whether ``mac`` is ``value``'s under any of the keys (each compared
        in constant time)."""
        return any(_same(mac, self._mac(purpose, value, key)) for key in self._keys)

    def session_cookie(self, uid: int, now: int, session_epoch: int) -> str:
        """The value of the sign-in cookie for ``uid`` (a fresh nonce each
        sign-in, so a cookie set before sign-in is never promoted)."""
        body = f"{uid}.{now}.{session_epoch}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac('session', body)}"

    def read_session(self, cookie: str | None, now: int) -> SignedIn | None:
        """The signed-in user of a valid, unexpired cookie, else None. The
        caller still compares ``session_epoch`` with the user's."""
        if not cookie or len(cookie) > 256:
            return None
        body, _, mac = cookie.rpartition(".")
        if not body or not self._verified("session", body, mac):
            return None
        parts = body.split(".", 3)
        if len(parts) != 4 or not all(part.isdigit() for part in parts[:3]):
            return None
        uid_text, issued_text, epoch_text, _nonce = parts
        issued = int(issued_text)
        if not issued <= now < issued + self.max_age_s:
            return None
        return SignedIn(uid=int(uid_text), signed_in_at=issued, session_epoch=int(epoch_text))

    @staticmethod
    def new_csrf_cookie() -> str:
        return secrets.token_urlsafe(32)

    def csrf_token(self, csrf_cookie: str) -> str:
        """The token that forms carry for this browser's CSRF cookie."""
        return self._mac("csrf", csrf_cookie)

    def check_csrf(self, csrf_cookie: str | None, token: str | None) -> bool:
        """Constant-time check of a submitted form's token."""
        if not csrf_cookie or not token or len(csrf_cookie) > 128:
            return False
        return self._verified("csrf", csrf_cookie, token)
