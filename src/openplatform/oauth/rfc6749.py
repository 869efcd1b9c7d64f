"""RFC 6749: the authorization request (§4.1.1) and the token endpoint grants
(§4.1.3 authorization code, §6 refresh, §4.4 client credentials, §4.3
password), hardened per RFC 9700 and PROTOCOL §2.

No web framework here: requests come in as :class:`OAuthParams`, responses go
out as plain dicts; errors are raised as :class:`OAuthError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from openplatform.errors import Code, OAuthError
from openplatform.oauth.client_auth import authenticate_client, parse_client_credentials
from openplatform.oauth.login_throttle import LoginThrottle
from openplatform.oauth.params import OAuthParams
from openplatform.oauth.redirect_uris import match_redirect_uri, resolve_redirect_uri
from openplatform.oauth.rfc7636 import validate_challenge, verify_code_verifier
from openplatform.oauth.rfc8414 import GRANT_TYPES
from openplatform.oauth.scopes import format_scope, parse_scope
from openplatform.oauth.storage import (
    Client,
    IssuedTokens,
    OAuthStorage,
    Redemption,
    RedemptionOutcome,
    StoredCode,
    StoredRefreshToken,
    TokenPlan,
)

__all__ = [
    "CODE_TTL_S",
    "AuthorizationRequest",
    "TokenEndpoint",
    "resolve_client_and_redirect",
    "resolve_scope",
    "token_response_body",
    "validate_authorization_request",
]

CODE_TTL_S = 300  # PROTOCOL §2: ≤ 600 s; RFC 6749 §4.1.2 recommends ≤ 10 min


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated §4.1.1 request."""

    client: Client
    redirect_uri: str  # where the response goes
    redirect_uri_given: str | None  # as given; the code is bound to it (§4.1.3)
    scope: tuple[str, ...]
    state: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    prompt: frozenset[str]


def resolve_scope(requested: str | None, client: Client) -> tuple[str, ...]:
    """§3.3: the requested scopes, each one the app may request (else 10005);
    when omitted, ``basic`` (or the app's scopes if it may not ask for basic)."""
    scopes = parse_scope(requested)
    if not scopes:
        return ("basic",) if "basic" in client.scopes else client.scopes
    refused = [scope for scope in scopes if scope not in client.scopes]
    if refused:
        raise OAuthError(Code.INVALID_SCOPE, f"the app may not request {' '.join(refused)}")
    return scopes


async def resolve_client_and_redirect(
    params: OAuthParams, storage: OAuthStorage
) -> tuple[Client, str]:
    """§4.1.2.1: the checks whose failure must NOT redirect — the client and its
    redirect URI. Everything raised here is shown on an error page."""
    client_id = params.get("client_id", redirectable=False)
    if client_id is None:
        raise OAuthError(Code.INVALID_REQUEST, "client_id is required", redirectable=False)
    client = await storage.get_client(client_id)
    if client is None or not client.active:
        raise OAuthError(Code.INVALID_CLIENT, "unknown client_id", redirectable=False)
    redirect_uri = resolve_redirect_uri(
        params.get("redirect_uri", redirectable=False), client.redirect_uris
    )
    return client, redirect_uri


def validate_authorization_request(
    params: OAuthParams, client: Client, redirect_uri: str
) -> AuthorizationRequest:
    """§4.1.1 and RFC 7636 §4.3 once client and redirect URI are known; errors
    here are redirected back to the client with ``state`` (§4.1.2.1)."""
    response_type = params.get("response_type")
    if response_type is None:
        raise OAuthError(Code.INVALID_REQUEST, "response_type is required")
    if response_type != "code":
        # No implicit grant (RFC 9700 §2.1.2), no hybrid flows.
        raise OAuthError(Code.UNSUPPORTED_RESPONSE_TYPE, "only response_type=code is supported")
    if "authorization_code" not in client.grants:
        raise OAuthError(Code.UNAUTHORIZED_CLIENT, "the app may not use authorization_code")
    scope = resolve_scope(params.get("scope"), client)
    method = params.get("code_challenge_method")
    challenge = validate_challenge(
        params.get("code_challenge"), method, required=client.public or client.require_pkce
    )
    prompt = frozenset((params.get("prompt") or "").split())
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        redirect_uri_given=params.get("redirect_uri"),
        scope=scope,
        state=params.get("state"),
        code_challenge=challenge,
        code_challenge_method=method if challenge else None,
        prompt=prompt,
    )


def token_response_body(tokens: IssuedTokens) -> dict[str, object]:
    """§5.1 plus the legacy session key/secret (PROTOCOL §2)."""
    body: dict[str, object] = {
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
    }
    if tokens.refresh_token is not None:
        body["refresh_token"] = tokens.refresh_token
    body["scope"] = format_scope(tokens.scope)
    if tokens.session_key is not None and tokens.session_secret is not None:
        body["session_key"] = tokens.session_key
        body["session_secret"] = tokens.session_secret
    return body


def _refresh_ttl(client: Client) -> int | None:
    return client.refresh_token_ttl_s if "refresh_token" in client.grants else None


class TokenEndpoint:
    """§3.2: authenticate the client, then run its grant."""

    def __init__(self, storage: OAuthStorage, throttle: LoginThrottle) -> None:
        self._storage = storage
        self._throttle = throttle

    async def handle(
        self, params: OAuthParams, authorization: str | None, client_ip: str
    ) -> dict[str, object]:
        grant_type = params.get("grant_type")
        if grant_type is None:
            raise OAuthError(Code.INVALID_REQUEST, "grant_type is required")
        if grant_type not in GRANT_TYPES:
            raise OAuthError(Code.UNSUPPORTED_GRANT_TYPE, f"unsupported grant_type {grant_type!r}")
        credentials = parse_client_credentials(authorization, params)
        client = await authenticate_client(credentials, self._storage)
        if grant_type not in client.grants:
            raise OAuthError(Code.UNAUTHORIZED_CLIENT, f"the app may not use {grant_type}")
        if grant_type == "authorization_code":
            tokens = await self._authorization_code(params, client)
        elif grant_type == "refresh_token":
            tokens = await self._refresh_token(params, client)
        elif grant_type == "client_credentials":
            tokens = await self._client_credentials(params, client)
        else:
            tokens = await self._password(params, client, client_ip)
        return token_response_body(tokens)

    async def _authorization_code(self, params: OAuthParams, client: Client) -> IssuedTokens:
        """§4.1.3 + RFC 7636 §4.6: a code is bound to client, redirect URI and
        challenge; it is redeemed exactly once (§4.1.2: a second use revokes)."""
        code = params.require("code")
        redirect_uri = params.get("redirect_uri")
        verifier = params.get("code_verifier")

        def check(stored: StoredCode) -> TokenPlan:
            if stored.redirect_uri is not None:
                if redirect_uri != stored.redirect_uri:
                    raise OAuthError(Code.REDIRECT_URI_MISMATCH, "not the /authorize redirect_uri")
            elif redirect_uri is not None and not any(
                match_redirect_uri(redirect_uri, uri) for uri in client.redirect_uris
            ):
                raise OAuthError(Code.REDIRECT_URI_MISMATCH, "redirect_uri is not registered")
            verify_code_verifier(verifier, stored.code_challenge)
            return TokenPlan(
                scope=stored.scope,
                access_ttl_s=client.access_token_ttl_s,
                refresh_ttl_s=_refresh_ttl(client),
                with_session=True,
            )

        redemption = await self._storage.redeem_code(code, client, check)
        return _issued_or_raise(redemption, "authorization code")

    async def _refresh_token(self, params: OAuthParams, client: Client) -> IssuedTokens:
        """§6 with rotation (RFC 9700 §4.14.2); a narrower ``scope`` may be asked."""
        token = params.require("refresh_token")
        requested = parse_scope(params.get("scope"))

        def check(stored: StoredRefreshToken) -> TokenPlan:
            scope = stored.scope
            if requested:
                wider = [s for s in requested if s not in stored.scope]
                if wider:
                    raise OAuthError(Code.INVALID_SCOPE, "scope wider than originally granted")
                scope = requested
            return TokenPlan(
                scope=scope,
                access_ttl_s=client.access_token_ttl_s,
                refresh_ttl_s=client.refresh_token_ttl_s,
                with_session=stored.user_id is not None,
            )

        redemption = await self._storage.rotate_refresh_token(token, client, check)
        # PROTOCOL §2: an expired refresh token is expired_token (10006).
        return _issued_or_raise(redemption, "refresh token", expired=Code.EXPIRED_TOKEN)

    async def _client_credentials(self, params: OAuthParams, client: Client) -> IssuedTokens:
        """§4.4: the app acts for itself — no user, no refresh token (§4.4.3)."""
        if client.public:
            raise OAuthError(Code.UNAUTHORIZED_CLIENT, "public clients cannot act for themselves")
        plan = TokenPlan(
            scope=resolve_scope(params.get("scope"), client),
            access_ttl_s=client.access_token_ttl_s,
            refresh_ttl_s=None,
            with_session=False,
        )
        return await self._storage.issue_tokens(client, None, "client_credentials", plan)

    async def _password(self, params: OAuthParams, client: Client, client_ip: str) -> IssuedTokens:
        """§4.3, only for apps an operator enabled it for; the same guessing
        limits as the login page apply."""
        username = params.require("username")
        password = params.require("password")
        scope = resolve_scope(params.get("scope"), client)
        attempt = await self._throttle.attempt(username, client_ip)
        if attempt.retry_after_s:
            # PROTOCOL §2: over a sign-in limit the password grant is 10000.
            raise OAuthError(
                Code.INVALID_REQUEST,
                f"too many failed sign-ins; retry in {attempt.retry_after_s} s",
                headers=attempt.headers(),
            )
        user = await self._storage.authenticate_user(username, password)
        if user is None:
            raise OAuthError(
                Code.INVALID_GRANT, "wrong username or password", headers=attempt.headers()
            )
        await self._throttle.succeeded(attempt)
        plan = TokenPlan(
            scope=scope,
            access_ttl_s=client.access_token_ttl_s,
            refresh_ttl_s=_refresh_ttl(client),
            with_session=True,
        )
        return await self._storage.issue_tokens(client, user.uid, "password", plan)


def _issued_or_raise(
    redemption: Redemption, what: str, *, expired: Code = Code.INVALID_GRANT
) -> IssuedTokens:
    outcome = redemption.outcome
    if outcome is RedemptionOutcome.ISSUED and redemption.tokens is not None:
        return redemption.tokens
    if outcome is RedemptionOutcome.EXPIRED:
        raise OAuthError(expired, f"the {what} has expired")
    if outcome is RedemptionOutcome.REUSED:
        raise OAuthError(
            Code.INVALID_GRANT, f"the {what} was already used; what it issued is revoked"
        )
    if outcome is RedemptionOutcome.ROTATED_RECENTLY:
        raise OAuthError(Code.INVALID_GRANT, f"the {what} was already used")
    raise OAuthError(Code.INVALID_GRANT, f"unknown or revoked {what}")
