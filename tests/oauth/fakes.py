"""A client directory for the unit tests of the pure OAuth modules."""

from __future__ import annotations

from collections.abc import Iterable

from openplatform.oauth.storage import Client


def make_client(
    client_id: str,
    secret: str,
    *,
    public: bool = False,
    active: bool = True,
    redirect_uris: tuple[str, ...] = ("https://app.example/cb",),
    scopes: tuple[str, ...] = ("basic", "email"),
    grants: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials"),
) -> Client:
    return Client(
        app_id=abs(hash(client_id)) % 10_000,
        client_id=client_id,
        secret=secret,
        name=client_id,
        description="",
        icon_url="",
        public=public,
        active=active,
        redirect_uris=redirect_uris,
        scopes=scopes,
        grants=grants,
        require_pkce=True,
        access_token_ttl_s=3600,
        refresh_token_ttl_s=86400,
        refresh_reuse_grace_s=10,
    )


class FakeStorage:
    """Only the client lookup; the grants are tested against the SQL storage."""

    def __init__(self, clients: Iterable[Client]) -> None:
        self._clients = {client.client_id: client for client in clients}

    async def get_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)
