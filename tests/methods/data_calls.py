"""Signed ``data.*`` calls for the data-store tests: as the app alone, or for a
user with the ``data`` scope (session key signed with the session secret)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, Literal

import httpx

from openplatform.errors import entry
from openplatform.storage.tokens import IssuedTokens
from tests.gateway.client import ApiClient
from tests.gateway.world import World

HttpMethod = Literal["GET", "POST"]
_distinct = itertools.count()


class DataCalls:
    def __init__(self, world: World, client: ApiClient, user: IssuedTokens) -> None:
        self.world = world
        self.client = client
        self.user_tokens = user

    async def app(
        self, method: str, params: dict[str, str] | None = None, http: HttpMethod = "POST"
    ) -> httpx.Response:
        """``data.<method>`` signed with the app secret (no user)."""
        return await self.client.call(f"data.{method}", params, http_method=http)

    async def parallel(
        self, count: int, method: str, params: dict[str, str]
    ) -> list[httpx.Response]:
        """``count`` app calls at once. They may arrive in any order, so they
        carry no ``call_id``, and differ by a parameter of their own (``n``)."""
        return list(
            await asyncio.gather(
                *(
                    self.client.call(
                        f"data.{method}", {**params, "n": str(next(_distinct))}, call_id=False
                    )
                    for _ in range(count)
                )
            )
        )

    async def user(
        self,
        method: str,
        params: dict[str, str] | None = None,
        http: HttpMethod = "POST",
        tokens: IssuedTokens | None = None,
    ) -> httpx.Response:
        """``data.<method>`` for the user, signed with the session secret."""
        tokens = tokens or self.user_tokens
        return await self.client.call(
            f"data.{method}",
            params,
            http_method=http,
            session_key=tokens.session_key,
            secret=tokens.session_secret,
        )


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["X-Error-Code"] == "0"
    return response.json()


def done(response: httpx.Response) -> None:
    assert ok(response) == {"result": True}


def error(response: httpx.Response, code: int, detail: str | None = None) -> dict[str, Any]:
    """The error body, checked: code, HTTP status and (part of) the detail."""
    body: dict[str, Any] = response.json()
    assert body["error_code"] == code, body
    assert response.status_code == entry(code).http_status, body
    assert response.headers["X-Error-Code"] == str(code)
    if detail is not None:
        assert detail in body.get("error_detail", ""), body
    return body
