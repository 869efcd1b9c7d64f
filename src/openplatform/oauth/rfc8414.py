"""RFC 8414: authorization server metadata (PROTOCOL §2), served at
``/.well-known/oauth-authorization-server``."""

from __future__ import annotations

from openplatform.oauth.client_auth import AUTH_METHODS
from openplatform.oauth.rfc7636 import SUPPORTED_METHODS
from openplatform.oauth.scopes import KNOWN_SCOPES

__all__ = [
    "AUTHORIZE_PATH",
    "GRANT_TYPES",
    "INTROSPECT_PATH",
    "METADATA_PATH",
    "REVOKE_PATH",
    "TOKEN_PATH",
    "server_metadata",
]

METADATA_PATH = "/.well-known/oauth-authorization-server"
AUTHORIZE_PATH = "/oauth/2.0/authorize"
TOKEN_PATH = "/oauth/2.0/token"
REVOKE_PATH = "/oauth/2.0/revoke"
INTROSPECT_PATH = "/oauth/2.0/introspect"

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", "password")


def server_metadata(issuer: str) -> dict[str, object]:
    """§2: the metadata document. ``issuer`` is given verbatim (RFC 8414 §3.3
    compares it as a string); the endpoints are its origin and path, without a
    trailing slash, plus their paths — so ``https://op.example/`` still yields
    ``https://op.example/oauth/2.0/token``."""
    base = issuer.rstrip("/")
    # Revocation and introspection authenticate the calling app the same way
    # the token endpoint does; "none" only identifies a public client.
    methods = list(AUTH_METHODS)
    return {
        "issuer": issuer,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "revocation_endpoint": base + REVOKE_PATH,
        "introspection_endpoint": base + INTROSPECT_PATH,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "scopes_supported": list(KNOWN_SCOPES),
        "code_challenge_methods_supported": list(SUPPORTED_METHODS),
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": base + "/console",
        "ui_locales_supported": ["en", "zh"],
    }
