"""Client authentication at the token, revocation and introspection endpoints
(RFC 6749 §2.3, PROTOCOL §2): ``client_secret_basic``, ``client_secret_post``,
and ``none`` for public clients."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from openplatform.errors import Code, OAuthError
from openplatform.oauth.params import OAuthParams
from openplatform.oauth.storage import Client, OAuthStorage

__all__ = [
    "AUTH_METHODS",
    "AuthMethod",
    "ClientCredentials",
    "authenticate_client",
    "parse_basic_credentials",
    "parse_client_credentials",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    secret: str | None
    method: AuthMethod


def _basic_failure(description: str) -> OAuthError:
    return OAuthError(Code.INVALID_CLIENT, description, basic_auth_failed=True)


def parse_basic_credentials(authorization: str) -> tuple[str, str]:
    """§2.3.1: ``Basic base64(form-urlencode(id) ":" form-urlencode(secret))``;
    both halves are form-decoded (``%5F`` → ``_``, ``+`` → space)."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise _basic_failure("unsupported authorization scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, or non-ASCII base64 text
        raise _basic_failure("malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise _basic_failure("malformed Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def parse_client_credentials(authorization: str | None, params: OAuthParams) -> ClientCredentials:
    """The credentials a request presents; more than one method at once is
    10000 (§2.3: a client MUST NOT use more than one)."""
    form_id = params.get("client_id")
    form_secret = params.get("client_secret")
    if authorization is not None and authorization.strip().lower().startswith("basic"):
        client_id, secret = parse_basic_credentials(authorization)
        if form_secret is not None:
            raise OAuthError(Code.INVALID_REQUEST, "client credentials given twice")
        if form_id is not None and form_id != client_id:
            raise OAuthError(Code.INVALID_REQUEST, "client_id differs from Basic credentials")
        return ClientCredentials(client_id, secret, "client_secret_basic")
    if form_id is None:
        raise OAuthError(Code.INVALID_CLIENT, "client authentication is required")
    if form_secret is not None:
        return ClientCredentials(form_id, form_secret, "client_secret_post")
    return ClientCredentials(form_id, None, "none")


async def authenticate_client(credentials: ClientCredentials, storage: OAuthStorage) -> Client:
    """The active app the credentials belong to, or 10001 (401 with Basic).

    Confidential clients must present their secret; public clients may use
    ``none``. Secrets are compared in constant time."""
    basic = credentials.method == "client_secret_basic"
    client = await storage.get_client(credentials.client_id)
    if client is None or not client.active:
        raise OAuthError(Code.INVALID_CLIENT, "unknown client", basic_auth_failed=basic)
    if credentials.secret is None:
        if not client.public:
            raise OAuthError(Code.INVALID_CLIENT, "client authentication is required")
        return client
    given = credentials.secret.encode("utf-8", "replace")
    if not hmac.compare_digest(given, client.secret.encode()):
        raise OAuthError(Code.INVALID_CLIENT, "wrong client secret", basic_auth_failed=basic)
    return client
