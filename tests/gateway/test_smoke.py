from __future__ import annotations

from tests.gateway.conftest import World


async def test_smoke(world: World) -> None:
    r = await world.client.call(
        "users.getInfo", {"uids": str(world.alice.uid), "fields": "uid,username"}
    )
    print(r.status_code, r.headers, r.text)
    assert r.status_code == 200
