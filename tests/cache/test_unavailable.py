"""A Redis that cannot be reached raises SharedStateUnavailable (mapped to code 2)."""

from __future__ import annotations

import pytest

from openplatform.cache import CallCheck, SharedStateUnavailable
from openplatform.cache.redis import RedisSharedState


async def test_unreachable_redis_raises_shared_state_unavailable() -> None:
    state = RedisSharedState("redis://127.0.0.1:1/0?socket_timeout=2", prefix="t")
    try:
        with pytest.raises(SharedStateUnavailable, match="Redis unavailable"):
            await state.check_call(CallCheck(app="1", nonce="n"))
    finally:
        await state.close()
