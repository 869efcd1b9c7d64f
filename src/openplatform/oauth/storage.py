"""The storage interface the OAuth core calls (in the manner of oauthlib's
``RequestValidator``): plain values in, plain values out. The SQL
implementation is :mod:`openplatform.oauth.sql_storage`.

The two operations that race — redeeming a code and rotating a refresh token —
are single atomic storage operations: the core hands over a ``check``
callback that validates the stored record inside the storage transaction; if
it raises, nothing is written and the code or token stays usable.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

__all__ = [
    "AuthenticatedUser",
    "Client",
    "CodeRequest",
    "IssuedTokens",
    "OAuthStorage",
    "Redemption",
    "RedemptionOutcome",
    "StoredCode",
    "StoredRefreshToken",
    "TokenInfo",
    "TokenPlan",
]

TokenTypeHint = Literal["access_token", "refresh_token"]


@dataclass(frozen=True, slots=True)
class Client:
    """An app as an OAuth client (PROTOCOL §5 settings that matter here)."""

    app_id: int
    client_id: str
    secret: str
    name: str
    description: str
    icon_url: str
    public: bool
    active: bool
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]
    grants: tuple[str, ...]
    require_pkce: bool
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    refresh_reuse_grace_s: int


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    uid: int
    username: str
    display_name: str = ""
    session_epoch: int = 0  # browser sessions of an older epoch are void


@dataclass(frozen=True, slots=True)
class CodeRequest:
    """What an authorization code is bound to (RFC 6749 §4.1.2, RFC 7636 §4.4)."""

    app_id: int
    user_id: int
    redirect_uri: str | None  # as given at /authorize; None when omitted
    scope: tuple[str, ...]
    code_challenge: str | None
    code_challenge_method: str | None
    ttl_s: int


@dataclass(frozen=True, slots=True)
class StoredCode:
    app_id: int
    user_id: int
    redirect_uri: str | None
    scope: tuple[str, ...]
    code_challenge: str | None


@dataclass(frozen=True, slots=True)
class StoredRefreshToken:
    app_id: int
    user_id: int | None
    scope: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TokenPlan:
    """What to issue: scope, lifetimes, and whether a refresh token and a legacy
    session key/secret (PROTOCOL §2) come with the access token."""

    scope: tuple[str, ...]
    access_ttl_s: int
    refresh_ttl_s: int | None  # None: no refresh token
    with_session: bool


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    refresh_token: str | None
    session_key: str | None
    session_secret: str | None


class RedemptionOutcome(enum.Enum):
    ISSUED = "issued"
    UNKNOWN = "unknown"  # no such code/token for this client, or revoked
    EXPIRED = "expired"
    REUSED = "reused"  # used before: what it issued has been revoked
    ROTATED_RECENTLY = "rotated_recently"  # refresh token rotated within the grace period


@dataclass(frozen=True, slots=True)
class Redemption:
    outcome: RedemptionOutcome
    tokens: IssuedTokens | None = None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """RFC 7662 §2.2 facts about an active token."""

    token_type: Literal["access_token", "refresh_token"]
    client_id: str
    scope: tuple[str, ...]
    user_id: int | None
    username: str | None
    issued_at: datetime
    expires_at: datetime


class OAuthStorage(Protocol):
    async def get_client(self, client_id: str) -> Client | None:
        """The app whose ``api_key`` is ``client_id`` (any status), or None."""

    async def authenticate_user(self, username: str, password: str) -> AuthenticatedUser | None:
        """The active user with these credentials, or None (in constant-ish time)."""

    async def get_user(self, uid: int) -> AuthenticatedUser | None:
        """The active (not disabled) user ``uid``, or None."""

    async def consented_scopes(self, user_id: int, app_id: int) -> frozenset[str]:
        """The scopes the user has granted the app so far."""

    async def save_consent(self, user_id: int, app_id: int, scope: tuple[str, ...]) -> None:
        """Remember the grant (added to what was granted before)."""

    async def create_code(self, request: CodeRequest) -> str:
        """A new authorization code (stored as a hash only)."""

    async def redeem_code(
        self,
        code: str,
        client: Client,
        check: Callable[[StoredCode], TokenPlan],
    ) -> Redemption:
        """Exchange ``code`` exactly once, atomically: mark it used, call ``check``
        (which raises to refuse — then nothing is written), issue the plan's
        tokens in a new token family. A used code: revoke that family, REUSED."""

    async def rotate_refresh_token(
        self,
        token: str,
        client: Client,
        check: Callable[[StoredRefreshToken], TokenPlan],
    ) -> Redemption:
        """Rotate ``token`` exactly once, atomically (RFC 9700 §4.14.2), issuing
        the plan's tokens in the same family. A rotated token presented again:
        within the app's grace period ROTATED_RECENTLY, later the family is
        revoked and REUSED."""

    async def issue_tokens(
        self, client: Client, user_id: int | None, grant_type: str, plan: TokenPlan
    ) -> IssuedTokens:
        """Tokens in a new family (client_credentials, password). Raises
        ``OAuthError`` 10002 when the user may no longer be issued tokens."""

    async def revoke_token(self, token: str, client: Client, hint: TokenTypeHint | None) -> None:
        """RFC 7009 §2.1: revoke the client's token (a refresh token: its whole
        family); unknown tokens and other clients' tokens are ignored."""

    async def introspect_token(
        self, token: str, client: Client, hint: TokenTypeHint | None
    ) -> TokenInfo | None:
        """RFC 7662: the facts about an active token of ``client``, else None."""
