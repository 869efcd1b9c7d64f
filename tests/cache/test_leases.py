"""Leases on every backend (memory, Redis, Redis Cluster): one holder at a
time, renewed and released by their holder only, lapsing when not renewed
(what keeps the housekeeping to one process across hosts)."""

from __future__ import annotations

import asyncio

import pytest

from openplatform.cache import SharedState
from tests.cache.conftest import Backend


async def test_one_holder_and_only_the_holder_renews_or_releases(
    shared_state: SharedState,
) -> None:
    assert await shared_state.acquire_lease("prune", "owner-a", 30)
    assert not await shared_state.acquire_lease("prune", "owner-b", 30)
    assert not await shared_state.acquire_lease("prune", "owner-a", 30)  # renew, not re-take
    assert not await shared_state.renew_lease("prune", "owner-b", 30)
    assert not await shared_state.release_lease("prune", "owner-b")
    assert not await shared_state.acquire_lease("prune", "owner-b", 30)  # still a's
    assert await shared_state.acquire_lease("other-lease", "owner-b", 30)  # names are apart
    assert await shared_state.renew_lease("prune", "owner-a", 30)
    assert await shared_state.release_lease("prune", "owner-a")
    assert not await shared_state.release_lease("prune", "owner-a")  # released already
    assert not await shared_state.renew_lease("prune", "owner-a", 30)
    assert await shared_state.acquire_lease("prune", "owner-b", 30)


async def test_a_lapsed_lease_goes_to_the_next_and_the_old_holder_cannot_touch_it(
    backend: Backend,
) -> None:
    state = backend.state
    assert await state.acquire_lease("prune", "owner-a", 0.2)
    await backend.advance(0.05)
    assert await state.renew_lease("prune", "owner-a", 0.2)  # 0.2 s from now
    await backend.advance(0.35)
    assert await state.acquire_lease("prune", "owner-b", 30)
    assert not await state.renew_lease("prune", "owner-a", 30)
    assert not await state.release_lease("prune", "owner-a")
    assert not await state.acquire_lease("prune", "owner-c", 30)  # b's, untouched


async def test_concurrent_takers_exactly_one_wins(shared_state: SharedState) -> None:
    taken = await asyncio.gather(
        *(shared_state.acquire_lease("prune", f"owner-{n}", 30) for n in range(20))
    )
    assert taken.count(True) == 1


@pytest.mark.parametrize(
    ("name", "owner", "ttl_s"),
    [("{prune}", "a", 30), ("", "a", 30), ("prune", "", 30), ("prune", "a", 0)],
)
async def test_malformed_leases_are_refused(
    shared_state: SharedState, name: str, owner: str, ttl_s: float
) -> None:
    with pytest.raises(ValueError, match="lease"):
        await shared_state.acquire_lease(name, owner, ttl_s)
