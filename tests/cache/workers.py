"""Worker processes for the cross-process races (started with ``spawn``)."""

from __future__ import annotations

import asyncio
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from openplatform.cache import CallCheck, Outcome, RateLimitRule
from openplatform.cache.redis import RedisSharedState

APP = "ak_race"


async def _race(url: str, prefix: str, kind: str, attempts: int, barrier: Barrier) -> list[str]:
    state = RedisSharedState(url, prefix)
    try:
        await state.ping()
        rule = RateLimitRule("app", limit=100, window_s=600)
        checks = []
        for i in range(attempts):
            if kind == "nonce":
                checks.append(CallCheck(app=APP, nonce="the-one-nonce"))
            elif kind == "rate":
                checks.append(CallCheck(app=APP, limits=(rule,)))
            else:
                checks.append(CallCheck(app=APP, call_id_key="k", call_id=str(i)))
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
        verdicts = await asyncio.gather(*(state.check_call(check) for check in checks))
        return [
            check.call_id or ""
            for check, verdict in zip(checks, verdicts, strict=True)
            if verdict.outcome is Outcome.OK
        ]
    finally:
        await state.close()


def race(
    url: str, prefix: str, kind: str, attempts: int, barrier: Barrier, results: Queue[list[str]]
) -> None:
    """Run ``attempts`` concurrent checks of ``kind`` once every worker is ready;
    put the accepted ones (their call_id, or "") on ``results``."""
    results.put(asyncio.run(_race(url, prefix, kind, attempts, barrier)))
