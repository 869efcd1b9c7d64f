"""check_call on every backend: replay nonces, call_id, GCRA rate limits,
and the all-or-nothing order between them (PROTOCOL §3.3 steps 10, 11, 13)."""

from __future__ import annotations

import asyncio
import random

import pytest

from openplatform.cache import (
    CallCheck,
    CallVerdict,
    Outcome,
    RateLimitRule,
    RateStatus,
    SharedState,
    open_shared_state,
)
from openplatform.cache.memory import MemorySharedState
from openplatform.cache.redis import RedisSharedState
from tests.cache.conftest import Backend

OK = Outcome.OK
APP = "ak_test_0001"


def call(**fields: object) -> CallCheck:
    return CallCheck(app=APP, **fields)  # type: ignore[arg-type]


# -- nonce -----------------------------------------------------------------


async def test_nonce_first_wins_second_refused(shared_state: SharedState) -> None:
    first = await shared_state.check_call(call(nonce="n-1"))
    second = await shared_state.check_call(call(nonce="n-1"))
    assert first == CallVerdict(OK)
    assert second == CallVerdict(Outcome.REPLAYED)
    assert await shared_state.remember_nonce(APP, "n-2", 600)
    assert not await shared_state.remember_nonce(APP, "n-2", 600)


async def test_nonce_any_text(shared_state: SharedState) -> None:
    for nonce in ("ключ-☃-ünï", "a:b:{c}", " ", "x" * 200):
        assert await shared_state.remember_nonce(APP, nonce, 600)
        assert not await shared_state.remember_nonce(APP, nonce, 600)


async def test_nonce_is_per_app(shared_state: SharedState) -> None:
    assert await shared_state.remember_nonce("app-a", "same", 600)
    assert await shared_state.remember_nonce("app-b", "same", 600)
    assert not await shared_state.remember_nonce("app-a", "same", 600)


async def test_nonce_expires_after_ttl(backend: Backend) -> None:
    state = backend.state
    assert await state.remember_nonce(APP, "short", 1)
    await backend.advance(0.3)
    assert not await state.remember_nonce(APP, "short", 1)
    await backend.advance(1.0)
    assert await state.remember_nonce(APP, "short", 1)
    assert not await state.remember_nonce(APP, "short", 1)


async def test_nonce_ttl_must_be_positive(shared_state: SharedState) -> None:
    with pytest.raises(ValueError, match="nonce_ttl_s"):
        await shared_state.check_call(call(nonce="x", nonce_ttl_s=0))


# -- call_id ---------------------------------------------------------------


async def test_call_id_must_increase(shared_state: SharedState) -> None:
    accept = shared_state.accept_call_id
    assert await accept(APP, "session-1", "1700000000001")
    assert await accept(APP, "session-1", "1700000000002")
    assert not await accept(APP, "session-1", "1700000000002")
    assert not await accept(APP, "session-1", "1700000000001")
    assert not await accept(APP, "session-1", "999")
    assert await accept(APP, "session-1", "1700000000010")
    verdict = await shared_state.check_call(call(call_id_key="session-1", call_id="1700000000010"))
    assert verdict == CallVerdict(Outcome.CALL_ID_NOT_INCREASING)


async def test_call_id_first_value_and_zero(shared_state: SharedState) -> None:
    assert await shared_state.accept_call_id(APP, "k", "0")
    assert not await shared_state.accept_call_id(APP, "k", "0")
    assert not await shared_state.accept_call_id(APP, "k", "000")
    assert await shared_state.accept_call_id(APP, "k", "1")


async def test_call_id_big_numbers_compared_exactly(shared_state: SharedState) -> None:
    accept = shared_state.accept_call_id
    big = 123456789012345678901234567890  # 30 digits, far beyond a double's 53 bits
    assert await accept(APP, "k", str(big))
    assert not await accept(APP, "k", str(big))
    assert not await accept(APP, "k", str(big - 1))
    assert await accept(APP, "k", str(big + 1))
    # equal as floats, different as integers
    assert float(big + 1) == float(big + 2)
    assert await accept(APP, "k", str(big + 2))
    assert not await accept(APP, "k", "9" * 29)  # shorter is smaller
    assert await accept(APP, "k", "1" + "0" * 30)  # longer is greater
    assert not await accept(APP, "k", "000" + "1" + "0" * 30)  # leading zeros don't count
    assert await accept(APP, "k", "0001" + "0" * 29 + "1")
    assert await accept(APP, "k", "9" * 120)
    assert not await accept(APP, "k", "9" * 119 + "8")


async def test_call_id_keys_are_independent(shared_state: SharedState) -> None:
    accept = shared_state.accept_call_id
    assert await accept(APP, "token-a", "100")
    assert await accept(APP, "token-b", "50")
    assert not await accept(APP, "token-a", "60")
    assert await accept(APP, "token-b", "60")
    assert await accept("other-app", "token-a", "1")


async def test_call_id_random_sequences_match_integer_order(
    shared_state: SharedState,
) -> None:
    """Accepted exactly when greater, as integers, than every accepted before —
    for values that differ in a single digit anywhere in up to 45 digits."""
    rng = random.Random(20261125)
    for key in range(4):
        best = -1
        current = rng.randrange(10**44)
        for _ in range(120):
            digits = list(str(current))
            position = rng.randrange(len(digits))
            digits[position] = str(rng.randrange(10))
            if rng.random() < 0.1:
                digits.insert(0, str(rng.randrange(1, 10)))
            value = int("".join(digits))
            text = "0" * rng.choice([0, 0, 0, 1, 5]) + str(value)
            accepted = await shared_state.accept_call_id(APP, f"key-{key}", text)
            assert accepted == (value > best), (text, best)
            if accepted:
                best = value
            current = value


async def test_concurrent_tasks_one_nonce_one_winner(shared_state: SharedState) -> None:
    verdicts = await asyncio.gather(
        *(shared_state.check_call(call(nonce="contested")) for _ in range(200))
    )
    assert sum(v.outcome is OK for v in verdicts) == 1


async def test_concurrent_tasks_never_accept_a_call_id_twice(
    shared_state: SharedState,
) -> None:
    values = [str(i) for i in range(100)] * 3
    random.Random(7).shuffle(values)
    results = await asyncio.gather(
        *(shared_state.accept_call_id(APP, "k", value) for value in values)
    )
    accepted = [value for value, ok in zip(values, results, strict=True) if ok]
    assert len(accepted) == len(set(accepted))
    assert [int(v) for v in accepted] == sorted(int(v) for v in accepted)


@pytest.mark.parametrize("bad", ["", "-1", "1.5", "1e9", " 12", "12a", "１２", "+3"])
async def test_call_id_must_be_decimal_digits(shared_state: SharedState, bad: str) -> None:
    with pytest.raises(ValueError, match="call_id"):
        await shared_state.accept_call_id(APP, "k", bad)


async def test_call_id_mark_expires(backend: Backend) -> None:
    def check(call_id: str) -> CallCheck:
        return call(call_id_key="k", call_id=call_id, call_id_ttl_s=1)

    assert (await backend.state.check_call(check("9"))).outcome is OK
    verdict = await backend.state.check_call(check("8"))
    assert verdict.outcome is Outcome.CALL_ID_NOT_INCREASING
    await backend.advance(1.2)
    assert (await backend.state.check_call(check("8"))).outcome is OK


# -- rate limits -------------------------------------------------------------


async def test_rate_exactly_limit_allowed(shared_state: SharedState) -> None:
    rule = RateLimitRule("app", limit=5, window_s=10)  # one call refills every 2 s
    verdicts = [await shared_state.hit_rate_limits(APP, [rule]) for _ in range(8)]
    assert [v.outcome for v in verdicts] == [OK] * 5 + [Outcome.RATE_LIMITED] * 3
    assert [v.rate for v in verdicts[:5]] == [
        RateStatus(limit=5, remaining=4, reset_s=2, retry_after_s=0),
        RateStatus(limit=5, remaining=3, reset_s=4, retry_after_s=0),
        RateStatus(limit=5, remaining=2, reset_s=6, retry_after_s=0),
        RateStatus(limit=5, remaining=1, reset_s=8, retry_after_s=0),
        RateStatus(limit=5, remaining=0, reset_s=10, retry_after_s=0),
    ]
    for refused in verdicts[5:]:
        assert refused.rate == RateStatus(limit=5, remaining=0, reset_s=10, retry_after_s=2)


async def test_rate_window_recovery(backend: Backend) -> None:
    state = backend.state
    rule = RateLimitRule("ip:127.0.0.1", limit=2, window_s=2)  # refills one per second
    assert [(await state.hit_rate_limits(APP, [rule])).outcome for _ in range(3)] == [
        OK,
        OK,
        Outcome.RATE_LIMITED,
    ]
    await backend.advance(1.05)  # one call has come back, not two
    assert (await state.hit_rate_limits(APP, [rule])).outcome is OK
    refused = await state.hit_rate_limits(APP, [rule])
    assert refused.outcome is Outcome.RATE_LIMITED
    assert refused.rate is not None
    assert refused.rate.retry_after_s == 1
    await backend.advance(2.05)  # the whole window: full again
    full = [await state.hit_rate_limits(APP, [rule]) for _ in range(3)]
    assert [v.outcome for v in full] == [OK, OK, Outcome.RATE_LIMITED]
    assert full[0].rate == RateStatus(limit=2, remaining=1, reset_s=1, retry_after_s=0)


async def test_rate_several_limits_refused_call_consumes_none(
    shared_state: SharedState,
) -> None:
    wide = RateLimitRule("app", limit=10, window_s=100)
    narrow = RateLimitRule("user:42", limit=2, window_s=100)
    first = await shared_state.hit_rate_limits(APP, [wide, narrow])
    # the narrow limit has the least remaining
    assert first == CallVerdict(OK, RateStatus(limit=2, remaining=1, reset_s=50, retry_after_s=0))
    assert (await shared_state.hit_rate_limits(APP, [wide, narrow])).outcome is OK
    for _ in range(3):
        refused = await shared_state.hit_rate_limits(APP, [wide, narrow])
        assert refused == CallVerdict(
            Outcome.RATE_LIMITED,
            RateStatus(limit=2, remaining=0, reset_s=100, retry_after_s=50),
        )
    # the refused calls took nothing from the wide counter: 2 of 10 used
    alone = await shared_state.hit_rate_limits(APP, [wide])
    assert alone == CallVerdict(OK, RateStatus(limit=10, remaining=7, reset_s=30, retry_after_s=0))


async def test_rate_status_picks_least_remaining(shared_state: SharedState) -> None:
    a = RateLimitRule("a", limit=3, window_s=30)
    b = RateLimitRule("b", limit=100, window_s=10)
    c = RateLimitRule("c", limit=50, window_s=100)
    verdict = await shared_state.hit_rate_limits(APP, [b, a, c])
    assert verdict == CallVerdict(OK, RateStatus(limit=3, remaining=2, reset_s=10, retry_after_s=0))
    # same remaining: the longer reset wins
    d = RateLimitRule("d", limit=3, window_s=300)
    e = RateLimitRule("e", limit=3, window_s=60)
    verdict = await shared_state.hit_rate_limits(APP, [e, d])
    assert verdict.rate == RateStatus(limit=3, remaining=2, reset_s=100, retry_after_s=0)


async def test_rate_refusal_reports_longest_retry(shared_state: SharedState) -> None:
    short = RateLimitRule("short", limit=1, window_s=5)
    long = RateLimitRule("long", limit=1, window_s=50)
    assert (await shared_state.hit_rate_limits(APP, [short, long])).outcome is OK
    refused = await shared_state.hit_rate_limits(APP, [short, long])
    assert refused == CallVerdict(
        Outcome.RATE_LIMITED, RateStatus(limit=1, remaining=0, reset_s=50, retry_after_s=50)
    )


async def test_rate_counters_are_per_app_and_key(shared_state: SharedState) -> None:
    rule = RateLimitRule("app", limit=1, window_s=60)
    assert (await shared_state.hit_rate_limits("app-a", [rule])).outcome is OK
    assert (await shared_state.hit_rate_limits("app-b", [rule])).outcome is OK
    assert (await shared_state.hit_rate_limits("app-a", [rule])).outcome is Outcome.RATE_LIMITED
    other = RateLimitRule("other", limit=1, window_s=60)
    assert (await shared_state.hit_rate_limits("app-a", [other])).outcome is OK


async def test_rate_concurrent_tasks_exactly_limit(shared_state: SharedState) -> None:
    rule = RateLimitRule("burst", limit=20, window_s=60)
    verdicts = await asyncio.gather(*(shared_state.hit_rate_limits(APP, [rule]) for _ in range(60)))
    assert sum(v.outcome is OK for v in verdicts) == 20
    remaining = sorted(v.rate.remaining for v in verdicts if v.outcome is OK and v.rate)
    assert remaining == list(range(20))


async def test_released_calls_come_back_one_each(shared_state: SharedState) -> None:
    rule = RateLimitRule("slot", limit=3, window_s=600)
    for _ in range(3):
        assert (await shared_state.hit_rate_limits(APP, [rule])).outcome is OK
    assert (await shared_state.hit_rate_limits(APP, [rule])).outcome is Outcome.RATE_LIMITED
    await shared_state.release_rate_limits(APP, [rule])
    back = await shared_state.hit_rate_limits(APP, [rule])
    assert back.outcome is OK
    assert back.rate is not None and back.rate.remaining == 0
    assert (await shared_state.hit_rate_limits(APP, [rule])).outcome is Outcome.RATE_LIMITED


async def test_release_never_holds_more_than_the_limit(shared_state: SharedState) -> None:
    rule = RateLimitRule("slot", limit=2, window_s=600)
    await shared_state.hit_rate_limits(APP, [rule])
    for _ in range(5):
        await shared_state.release_rate_limits(APP, [rule])
    verdicts = [await shared_state.hit_rate_limits(APP, [rule]) for _ in range(3)]
    assert [v.outcome for v in verdicts] == [OK, OK, Outcome.RATE_LIMITED]


async def test_cleared_counters_are_full_again(shared_state: SharedState) -> None:
    cleared = RateLimitRule("account", limit=2, window_s=600)
    kept = RateLimitRule("ip", limit=5, window_s=600)
    for _ in range(2):
        await shared_state.hit_rate_limits(APP, [cleared, kept])
    await shared_state.release_rate_limits(APP, [], clear=["account"])
    verdict = await shared_state.hit_rate_limits(APP, [cleared, kept])
    assert verdict.outcome is OK
    assert verdict.rate is not None and (verdict.rate.limit, verdict.rate.remaining) == (2, 1)
    await shared_state.release_rate_limits("another-app", [], clear=["ip"])  # other apps' only
    status = await shared_state.hit_rate_limits(APP, [kept])
    assert status.rate is not None and status.rate.remaining == 1


@pytest.mark.parametrize(
    "rules",
    [
        [RateLimitRule("x", limit=0, window_s=10)],
        [RateLimitRule("x", limit=5, window_s=0)],
        [RateLimitRule("x", limit=2_000_001, window_s=2)],
        [RateLimitRule("x", limit=5, window_s=10), RateLimitRule("x", limit=9, window_s=10)],
    ],
)
async def test_rate_invalid_rules_refused(
    shared_state: SharedState, rules: list[RateLimitRule]
) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        await shared_state.hit_rate_limits(APP, rules)


# -- all-or-nothing order: nonce -> call_id -> rate ------------------------


async def test_replayed_nonce_consumes_neither_call_id_nor_rate(
    shared_state: SharedState,
) -> None:
    rule = RateLimitRule("app", limit=3, window_s=30)

    def check(nonce: str, call_id: str) -> CallCheck:
        return call(nonce=nonce, call_id_key="k", call_id=call_id, limits=(rule,))

    first = await shared_state.check_call(check("n1", "5"))
    assert first == CallVerdict(OK, RateStatus(limit=3, remaining=2, reset_s=10, retry_after_s=0))
    replay = await shared_state.check_call(check("n1", "6"))
    # the counters are reported as they stand: nothing was consumed
    assert replay == CallVerdict(
        Outcome.REPLAYED, RateStatus(limit=3, remaining=2, reset_s=10, retry_after_s=0)
    )
    after = await shared_state.check_call(check("n2", "6"))  # 6 was not recorded
    assert after == CallVerdict(OK, RateStatus(limit=3, remaining=1, reset_s=20, retry_after_s=0))


async def test_refused_call_id_records_no_nonce_and_consumes_no_rate(
    shared_state: SharedState,
) -> None:
    rule = RateLimitRule("app", limit=2, window_s=20)
    assert await shared_state.accept_call_id(APP, "k", "10")
    refused = await shared_state.check_call(
        call(nonce="n1", call_id_key="k", call_id="10", limits=(rule,))
    )
    assert refused == CallVerdict(
        Outcome.CALL_ID_NOT_INCREASING,
        RateStatus(limit=2, remaining=2, reset_s=0, retry_after_s=0),
    )
    accepted = await shared_state.check_call(
        call(nonce="n1", call_id_key="k", call_id="11", limits=(rule,))
    )
    assert accepted == CallVerdict(
        OK, RateStatus(limit=2, remaining=1, reset_s=10, retry_after_s=0)
    )


async def test_rate_refused_call_records_no_nonce_nor_call_id(
    shared_state: SharedState,
) -> None:
    rule = RateLimitRule("app", limit=1, window_s=60)
    assert (await shared_state.hit_rate_limits(APP, [rule])).outcome is OK
    refused = await shared_state.check_call(
        call(nonce="n9", call_id_key="k", call_id="100", limits=(rule,))
    )
    assert refused.outcome is Outcome.RATE_LIMITED
    assert refused.rate is not None
    assert refused.rate.retry_after_s >= 1
    assert await shared_state.remember_nonce(APP, "n9", 600)
    assert await shared_state.accept_call_id(APP, "k", "100")


async def test_nonce_checked_before_call_id(shared_state: SharedState) -> None:
    assert await shared_state.remember_nonce(APP, "n", 600)
    assert await shared_state.accept_call_id(APP, "k", "5")
    verdict = await shared_state.check_call(call(nonce="n", call_id_key="k", call_id="1"))
    assert verdict == CallVerdict(Outcome.REPLAYED)


async def test_empty_check_is_ok(shared_state: SharedState) -> None:
    assert await shared_state.check_call(call()) == CallVerdict(OK)


async def test_ping(shared_state: SharedState) -> None:
    await shared_state.ping()


async def test_app_and_prefix_must_not_break_the_hash_tag(backend: Backend) -> None:
    for app in ("", "a{b", "a}b"):
        with pytest.raises(ValueError, match="app id"):
            await backend.state.remember_nonce(app, "n", 60)
    with pytest.raises(ValueError, match="prefix"):
        MemorySharedState("op{x}")
    with pytest.raises(ValueError, match="prefix"):
        RedisSharedState("redis://127.0.0.1:6379/0", "op}")


def test_open_shared_state_by_scheme() -> None:
    assert isinstance(open_shared_state("memory://"), MemorySharedState)
    assert isinstance(open_shared_state("redis://127.0.0.1:6379/0"), RedisSharedState)
    with pytest.raises(ValueError, match="scheme"):
        open_shared_state("memcached://127.0.0.1")


# -- app generations --------------------------------------------------------


async def test_generation_is_reported_and_moves_on_when_bumped(shared_state: SharedState) -> None:
    first = await shared_state.check_call(CallCheck(app="gen-a", nonce="1"))
    again = await shared_state.check_call(CallCheck(app="gen-a"))
    assert again.generation == first.generation  # nothing changed
    await shared_state.bump_generation("gen-a")
    bumped = await shared_state.check_call(CallCheck(app="gen-a", nonce="1"))
    assert bumped.outcome is Outcome.REPLAYED  # reported whatever the outcome
    assert bumped.generation != first.generation
    other = await shared_state.check_call(CallCheck(app="gen-b"))
    await shared_state.bump_generation("gen-a")
    assert (await shared_state.check_call(CallCheck(app="gen-b"))).generation == other.generation


async def test_concurrent_bumps_are_all_counted(shared_state: SharedState) -> None:
    before = (await shared_state.check_call(CallCheck(app="gen-c"))).generation
    await asyncio.gather(*(shared_state.bump_generation("gen-c") for _ in range(20)))
    assert (await shared_state.check_call(CallCheck(app="gen-c"))).generation == before + 20


# -- batch items ---------------------------------------------------------------


async def test_batch_items_each_consume_all_their_limits_or_none(
    shared_state: SharedState,
) -> None:
    per_app = RateLimitRule("app", limit=5, window_s=600)
    reads = RateLimitRule("reads", limit=2, window_s=600)
    writes = RateLimitRule("writes", limit=10, window_s=600)
    items = [[per_app, reads], [per_app, writes], [per_app, reads], [per_app, reads], [per_app]]
    verdict = await shared_state.check_call(
        CallCheck(app=APP, nonce="b1", limits=[per_app], batch=items)
    )
    assert verdict.outcome is OK
    # the call took 1 of "app", items 0-1 one each; item 3 finds "reads" full
    # and takes nothing; item 4 takes the last of "app"
    assert [wait > 0 for wait in verdict.item_waits] == [False, False, False, True, False]
    assert verdict.item_waits[3] >= 1
    after = await shared_state.check_call(CallCheck(app=APP, limits=[writes]))
    assert after.rate is not None and after.rate.remaining == 8
    full = await shared_state.check_call(CallCheck(app=APP, limits=[per_app]))
    assert full.outcome is Outcome.RATE_LIMITED


async def test_a_refused_batch_call_runs_no_item_checks(shared_state: SharedState) -> None:
    rule = RateLimitRule("items", limit=3, window_s=600)
    first = await shared_state.check_call(CallCheck(app=APP, nonce="b2", batch=[[rule]]))
    assert first.item_waits == (0,)
    replayed = await shared_state.check_call(CallCheck(app=APP, nonce="b2", batch=[[rule]] * 3))
    assert replayed.outcome is Outcome.REPLAYED
    assert replayed.item_waits == ()
    status = await shared_state.check_call(CallCheck(app=APP, limits=[rule]))
    assert status.rate is not None and status.rate.remaining == 1  # only 2 were taken
