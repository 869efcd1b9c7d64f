"""Race safety (PROTOCOL §2): under any concurrency one authorization code and
one refresh token are each exchanged exactly once — on SQLite and PostgreSQL,
with requests spread over two application instances that share only the
database, as two server processes would."""

from __future__ import annotations

import asyncio

import httpx

from tests.oauth.conftest import OAuthWorld
from tests.oauth.flows import Pkce, exchange, get_code, refresh, tokens_for


async def test_16_parallel_refreshes_of_one_token_exactly_one_succeeds(
    world: OAuthWorld, second_instance: httpx.AsyncClient
) -> None:
    body = await tokens_for(world.http, world.app)
    clients = [world.http, second_instance]
    responses = await asyncio.gather(
        *(refresh(clients[i % 2], world.app, str(body["refresh_token"])) for i in range(16))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 15, [r.text for r in responses]
    assert {r.json()["error_code"] for r in responses if r.status_code == 400} == {10002}
    # Losers within the grace period are not punished: the winner's token works.
    (winner,) = (r.json() for r in responses if r.status_code == 200)
    follow_up = await refresh(world.http, world.app, winner["refresh_token"])
    assert follow_up.status_code == 200, follow_up.text


async def test_8_parallel_exchanges_of_one_code_exactly_one_succeeds(
    world: OAuthWorld, second_instance: httpx.AsyncClient
) -> None:
    pkce = Pkce.new()
    code = await get_code(world.http, world.app, pkce)
    clients = [world.http, second_instance]
    responses = await asyncio.gather(
        *(exchange(clients[i % 2], world.app, code, pkce) for i in range(8))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * 7, [r.text for r in responses]
    assert {r.json()["error_code"] for r in responses if r.status_code == 400} == {10002}
    # Every other use is a second use of the code: what it issued is revoked.
    (winner,) = (r.json() for r in responses if r.status_code == 200)
    record = await world.db.tokens.find_access_token(winner["access_token"])
    assert record is not None
    assert record.revoked
