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


# Parameters each method accepts (well formed, naming what book_type() and an
# association "likes" define): for tests that go through every method.
VALID_PARAMS: dict[str, dict[str, str]] = {
    "getUserPreference": {"pref_id": "1"},
    "setUserPreference": {"pref_id": "1", "value": "x"},
    "getUserPreferences": {},
    "setUserPreferences": {"values": '{"1": "x"}'},
    "createObjectType": {"name": "author"},
    "dropObjectType": {"obj_type": "book"},
    "renameObjectType": {"obj_type": "book", "new_name": "novel"},
    "defineObjectProperty": {"obj_type": "book", "prop_name": "isbn", "prop_type": "2"},
    "undefineObjectProperty": {"obj_type": "book", "prop_name": "body"},
    "renameObjectProperty": {"obj_type": "book", "prop_name": "body", "new_name": "text"},
    "getObjectTypes": {},
    "getObjectType": {"obj_type": "book"},
    "createObject": {"obj_type": "book", "properties": '{"pages": 1}'},
    "updateObject": {"obj_id": "1", "properties": '{"pages": 2}'},
    "deleteObject": {"obj_id": "1"},
    "deleteObjects": {"obj_ids": "1"},
    "getObject": {"obj_id": "1"},
    "getObjects": {"obj_ids": "1"},
    "getObjectProperty": {"obj_id": "1", "prop_name": "pages"},
    "setObjectProperty": {"obj_id": "1", "prop_name": "pages", "prop_value": "3"},
    "getHashValue": {"obj_type": "book", "key": "k", "prop_name": "title"},
    "setHashValue": {"obj_type": "book", "key": "k", "prop_name": "title", "value": "x"},
    "incHashValue": {"obj_type": "book", "key": "k", "prop_name": "pages"},
    "removeHashKey": {"obj_type": "book", "key": "k"},
    "removeHashKeys": {"obj_type": "book", "keys": "k"},
    "defineAssociation": {"name": "follows", "assoc_type": "1"},
    "undefineAssociation": {"name": "likes"},
    "renameAssociation": {"name": "likes", "new_name": "loves"},
    "getAssociationDefinition": {"name": "likes"},
    "getAssociationDefinitions": {},
    "setAssociation": {"name": "likes", "obj_id1": "1", "obj_id2": "2"},
    "setAssociations": {"name": "likes", "obj_id1": "1", "obj_ids": "2,3"},
    "removeAssociation": {"name": "likes", "obj_id1": "1", "obj_id2": "2"},
    "removeAssociations": {"name": "likes", "obj_id1": "1", "obj_ids": "2,3"},
    "removeAssociatedObjects": {"name": "likes", "obj_id": "1"},
    "getAssociatedObjects": {"name": "likes", "obj_id": "1"},
    "getAssociatedObjectCount": {"name": "likes", "obj_id": "1"},
    "getAssociatedObjectCounts": {"name": "likes", "obj_ids": "1"},
    "getAssociations": {"obj_id1": "1", "obj_id2": "2"},
}
PER_USER = frozenset(
    {"getUserPreference", "setUserPreference", "getUserPreferences", "setUserPreferences"}
)
