"""RFC 7662: token introspection. The calling app authenticates; it may only
learn about its own tokens — anything else is ``{"active": false}`` (§2.2)."""

from __future__ import annotations

from openplatform.oauth.client_auth import authenticate_client, parse_client_credentials
from openplatform.oauth.params import OAuthParams
from openplatform.oauth.rfc7009 import token_type_hint
from openplatform.oauth.scopes import format_scope
from openplatform.oauth.storage import OAuthStorage

__all__ = ["IntrospectionEndpoint"]


class IntrospectionEndpoint:
    def __init__(self, storage: OAuthStorage, issuer: str) -> None:
        self._storage = storage
        self._issuer = issuer

    async def handle(self, params: OAuthParams, authorization: str | None) -> dict[str, object]:
        client = await authenticate_client(
            parse_client_credentials(authorization, params), self._storage
        )
        token = params.require("token")
        info = await self._storage.introspect_token(token, client, token_type_hint(params))
        if info is None:
            return {"active": False}
        body: dict[str, object] = {
            "active": True,
            "scope": format_scope(info.scope),
            "client_id": info.client_id,
            "token_type": "Bearer" if info.token_type == "access_token" else "refresh_token",
            "exp": int(info.expires_at.timestamp()),
            "iat": int(info.issued_at.timestamp()),
            "iss": self._issuer,
        }
        if info.user_id is not None:
            body["sub"] = str(info.user_id)
            if info.username is not None:
                body["username"] = info.username
        return body
