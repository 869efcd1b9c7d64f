"""RFC 7009: token revocation. The calling app authenticates as at the token
endpoint; revoking a refresh token revokes its whole family (§2.1). Unknown
tokens, and tokens of other apps, are answered 200 all the same (§2.2)."""

from __future__ import annotations

from openplatform.oauth.client_auth import authenticate_client, parse_client_credentials
from openplatform.oauth.params import OAuthParams
from openplatform.oauth.storage import OAuthStorage, TokenTypeHint

__all__ = ["RevocationEndpoint", "token_type_hint"]


def token_type_hint(params: OAuthParams) -> TokenTypeHint | None:
    """§2.1: a hint the server may use to speed up its lookup; values it does
    not know are ignored, as the token is searched everywhere anyway."""
    hint = params.get("token_type_hint")
    if hint == "access_token":
        return "access_token"
    if hint == "refresh_token":
        return "refresh_token"
    return None


class RevocationEndpoint:
    def __init__(self, storage: OAuthStorage) -> None:
        self._storage = storage

    async def handle(self, params: OAuthParams, authorization: str | None) -> None:
        client = await authenticate_client(
            parse_client_credentials(authorization, params), self._storage
        )
        token = params.require("token")
        await self._storage.revoke_token(token, client, token_type_hint(params))
