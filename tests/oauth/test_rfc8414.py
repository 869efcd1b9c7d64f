"""RFC 8414 metadata document (PROTOCOL §2)."""

from __future__ import annotations

from openplatform.oauth.rfc8414 import server_metadata
from tests.oauth.conftest import ISSUER, OAuthWorld


def test_metadata_names_every_endpoint_under_the_exact_issuer() -> None:
    meta = server_metadata("https://id.example")
    assert meta["issuer"] == "https://id.example"
    assert meta["authorization_endpoint"] == "https://id.example/oauth/2.0/authorize"
    assert meta["token_endpoint"] == "https://id.example/oauth/2.0/token"
    assert meta["revocation_endpoint"] == "https://id.example/oauth/2.0/revoke"
    assert meta["introspection_endpoint"] == "https://id.example/oauth/2.0/introspect"
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert set(meta["scopes_supported"]) == {"basic", "email", "mobile", "data"}  # type: ignore[arg-type]
    assert "implicit" not in meta["grant_types_supported"]  # type: ignore[operator]
    for key in (
        "token_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ):
        assert {"client_secret_basic", "client_secret_post"} <= set(meta[key])  # type: ignore[call-overload]
    assert meta["service_documentation"]


async def test_metadata_is_served_with_the_exact_issuer(world: OAuthWorld) -> None:
    response = await world.http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["issuer"] == ISSUER
    assert body["token_endpoint"] == ISSUER + "/oauth/2.0/token"


def test_issuer_with_a_trailing_slash_stays_verbatim_and_endpoints_stay_valid() -> None:
    """PROTOCOL §2: the issuer is used verbatim; endpoint URLs must still resolve."""
    meta = server_metadata("https://id.example/")
    assert meta["issuer"] == "https://id.example/"
    assert meta["token_endpoint"] == "https://id.example/oauth/2.0/token"
    assert meta["authorization_endpoint"] == "https://id.example/oauth/2.0/authorize"
