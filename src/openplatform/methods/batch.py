"""``batch.run`` in the registry (PROTOCOL §4 batch), so that it is listed,
documented and validated like every method. The gateway reads its feed and
checks every item's rate limits in the call's one shared-state step
(:mod:`openplatform.gateway.batch`); what reaches this handler is the plan
of items to run."""

from __future__ import annotations

from openplatform.methods.registry import MethodCall, MethodSpec, Param, ParamType

__all__ = ["BATCH_METHOD", "METHODS"]

BATCH_METHOD = "batch.run"
MAX_FEED_LENGTH = 64 * 1024


async def run_batch(call: MethodCall) -> object:
    """Every item's answer, in feed order."""
    assert call.batch is not None, "the gateway plans every batch.run call"
    return await call.batch.run(call)


METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(
        name=BATCH_METHOD,
        handler=run_batch,
        params=(
            Param(
                "method_feed",
                ParamType.STR,
                required=True,
                max_length=MAX_FEED_LENGTH,
                description="a JSON array of at most 20 URL-encoded calls, e.g. "
                '["method=users.getInfo&uids=1&fields=username"]; items carry no '
                "credential (they act with this call's)",
            ),
            Param(
                "serial_only",
                ParamType.BOOL,
                description="true: run the items one after another (default: at once)",
            ),
        ),
        batchable=False,
        description="Up to 20 calls in one: each item is permission-checked and "
        "rate-limited on its own and answers its result or its error, in order.",
    ),
)
