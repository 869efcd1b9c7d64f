"""The :class:`OAuthStorage` of the platform's database: apps as clients,
users, consents, and the atomic code/refresh operations of
:class:`~openplatform.storage.tokens.TokenRepository`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from openplatform.cache import CallCheck, SharedState, SharedStateUnavailable
from openplatform.errors import Code, OAuthError
from openplatform.gateway.credential_cache import CredentialCache
from openplatform.oauth.storage import (
    AuthenticatedUser,
    Client,
    CodeRequest,
    IssuedTokens,
    Redemption,
    RedemptionOutcome,
    StoredCode,
    StoredRefreshToken,
    TokenInfo,
    TokenPlan,
    TokenTypeHint,
)
from openplatform.storage.apps import AppRecord
from openplatform.storage.database import Database
from openplatform.storage.errors import UserDisabled
from openplatform.storage.models import utcnow
from openplatform.storage.tokens import (
    AccessTokenRecord,
    CodeRecord,
    CredentialState,
    Exchange,
    IssuePlan,
    RefreshRecord,
    RefreshTokenRecord,
)
from openplatform.storage.tokens import IssuedTokens as StoredTokens

__all__ = ["SqlOAuthStorage"]


def _client(app: AppRecord) -> Client:
    settings = app.settings
    return Client(
        app_id=app.id,
        client_id=app.api_key,
        secret=app.secret,
        name=app.name,
        description=app.description,
        icon_url=app.icon_url,
        public=settings.public,
        active=app.active,
        redirect_uris=settings.redirect_uris,
        scopes=settings.scopes,
        grants=settings.grants,
        require_pkce=settings.require_pkce or settings.public,
        access_token_ttl_s=settings.access_token_ttl_s,
        refresh_token_ttl_s=settings.refresh_token_ttl_s,
        refresh_reuse_grace_s=settings.refresh_reuse_grace_s,
    )


def _plan(plan: TokenPlan) -> IssuePlan:
    return IssuePlan(
        scope=" ".join(plan.scope),
        access_ttl_s=plan.access_ttl_s,
        refresh_ttl_s=plan.refresh_ttl_s,
        with_session=plan.with_session,
    )


def _tokens(tokens: StoredTokens) -> IssuedTokens:
    return IssuedTokens(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        scope=tuple(tokens.scope.split()),
        refresh_token=tokens.refresh_token,
        session_key=tokens.session_key,
        session_secret=tokens.session_secret,
    )


def _redemption(exchange: Exchange) -> Redemption:
    outcome = RedemptionOutcome(exchange.outcome.value)
    return Redemption(outcome, None if exchange.tokens is None else _tokens(exchange.tokens))


class SqlOAuthStorage:
    """Apps and access tokens come from ``cache`` (this process's memory,
    :mod:`openplatform.gateway.credential_cache`) when given: each request
    first asks ``shared_state`` for the client app's generation, so what it
    reads is current — a rotated secret or a revoked token is refused at once,
    whichever process changed it."""

    _MAX_USERNAMES = 100_000

    def __init__(
        self,
        database: Database,
        cache: CredentialCache | None = None,
        shared_state: SharedState | None = None,
    ) -> None:
        self._db = database
        self._cache = cache
        self._shared_state = shared_state
        self._usernames: dict[int, str] = {}  # usernames never change

    async def get_client(self, client_id: str) -> Client | None:
        if not client_id or len(client_id) > 64:
            return None
        cache, shared_state = self._cache, self._shared_state
        if cache is None or shared_state is None:
            app = await self._db.apps.get_by_api_key(client_id)
            return None if app is None else _client(app)
        app = await cache.app_by_key(client_id)
        if app is None:
            return None
        read_under = cache.generation(app.id)
        try:
            verdict = await shared_state.check_call(CallCheck(app=str(app.id)))
        except SharedStateUnavailable:
            cache.forget_everything()  # as the gateway does: trust nothing seen before
            raise
        if not cache.observe(app.id, verdict.generation, read_under):
            app = await cache.app_by_key(client_id, fresh=True)
        return None if app is None else _client(app)

    async def authenticate_user(self, username: str, password: str) -> AuthenticatedUser | None:
        user = await self._db.users.authenticate(username, password)
        if user is None:
            return None
        return AuthenticatedUser(user.uid, user.username, user.display_name, user.session_epoch)

    async def get_user(self, uid: int) -> AuthenticatedUser | None:
        user = await self._db.users.get(uid)
        if user is None or user.disabled:
            return None
        return AuthenticatedUser(user.uid, user.username, user.display_name, user.session_epoch)

    async def consented_scopes(self, user_id: int, app_id: int) -> frozenset[str]:
        consent = await self._db.consents.get(user_id, app_id)
        return frozenset() if consent is None else consent.scopes

    async def save_consent(self, user_id: int, app_id: int, scope: tuple[str, ...]) -> None:
        await self._db.consents.grant(user_id, app_id, scope)

    async def create_code(self, request: CodeRequest) -> str:
        return await self._db.tokens.create_code(
            request.app_id,
            request.user_id,
            request.redirect_uri,
            request.scope,
            request.code_challenge,
            request.code_challenge_method,
            request.ttl_s,
        )

    async def redeem_code(
        self, code: str, client: Client, check: Callable[[StoredCode], TokenPlan]
    ) -> Redemption:
        def stored_check(record: CodeRecord) -> IssuePlan:
            stored = StoredCode(
                app_id=record.app_id,
                user_id=record.user_id,
                redirect_uri=record.redirect_uri,
                scope=tuple(record.scope.split()),
                code_challenge=record.code_challenge,
            )
            return _plan(check(stored))

        exchange = await self._db.tokens.redeem_code(code, client.app_id, stored_check)
        return _redemption(exchange)

    async def rotate_refresh_token(
        self, token: str, client: Client, check: Callable[[StoredRefreshToken], TokenPlan]
    ) -> Redemption:
        def stored_check(record: RefreshRecord) -> IssuePlan:
            stored = StoredRefreshToken(
                app_id=record.app_id, user_id=record.user_id, scope=tuple(record.scope.split())
            )
            return _plan(check(stored))

        exchange = await self._db.tokens.rotate_refresh_token(
            token, client.app_id, client.refresh_reuse_grace_s, stored_check
        )
        return _redemption(exchange)

    async def issue_tokens(
        self, client: Client, user_id: int | None, grant_type: str, plan: TokenPlan
    ) -> IssuedTokens:
        if user_id is None and plan.refresh_ttl_s is None and not plan.with_session:
            app_token = await self._db.tokens.issue_app_token(
                client.app_id, " ".join(plan.scope), plan.access_ttl_s
            )
            return _tokens(app_token)
        try:
            issued = await self._db.tokens.issue_new_grant(
                client.app_id, user_id, grant_type, _plan(plan)
            )
        except UserDisabled:
            raise OAuthError(Code.INVALID_GRANT, "the user is disabled") from None
        if user_id is not None:
            # The user handed the app their password (an operator allowed the
            # password grant): that authorizes the app like the consent page does.
            await self._db.consents.grant(user_id, client.app_id, plan.scope)
        return _tokens(issued)

    async def revoke_token(self, token: str, client: Client, hint: TokenTypeHint | None) -> None:
        tokens = self._db.tokens
        if hint == "refresh_token":
            if not await tokens.revoke_refresh_token(token, client.app_id):
                await tokens.revoke_access_token(token, client.app_id)
            return
        if not await tokens.revoke_access_token(token, client.app_id):
            await tokens.revoke_refresh_token(token, client.app_id)

    async def introspect_token(
        self, token: str, client: Client, hint: TokenTypeHint | None
    ) -> TokenInfo | None:
        if not token or len(token) > 512:
            return None
        if hint == "refresh_token":
            info = await self._refresh_info(token, client) or await self._access_info(token, client)
        else:
            info = await self._access_info(token, client) or await self._refresh_info(token, client)
        return info

    async def _access_info(self, token: str, client: Client) -> TokenInfo | None:
        # get_client made this process current on the client app's generation
        if self._cache is not None:
            record = await self._cache.access_token(token)
        else:
            record = await self._db.tokens.find_access_token(token)
        if record is None:
            return None
        return await self._info("access_token", record, client)

    async def _refresh_info(self, token: str, client: Client) -> TokenInfo | None:
        record = await self._db.tokens.find_refresh_token(token)
        if record is None or record.rotated:
            return None
        return await self._info("refresh_token", record, client)

    async def _info(
        self,
        token_type: Literal["access_token", "refresh_token"],
        record: AccessTokenRecord | RefreshTokenRecord,
        client: Client,
    ) -> TokenInfo | None:
        """RFC 7662 §2.2: active only for the presenting client, while live."""
        if record.state(client.app_id, utcnow()) is not CredentialState.LIVE:
            return None
        return TokenInfo(
            token_type=token_type,
            client_id=client.client_id,
            scope=tuple(record.scope.split()),
            user_id=record.user_id,
            username=await self._username(record.user_id),
            issued_at=record.created_at,
            expires_at=record.expires_at,
        )

    async def _username(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        username = self._usernames.get(user_id)
        if username is None:
            user = await self._db.users.get(user_id)
            if user is None:
                return None
            if len(self._usernames) >= self._MAX_USERNAMES:
                self._usernames.clear()
            username = self._usernames[user_id] = user.username
        return username
