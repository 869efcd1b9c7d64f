"""``batch.run`` (PROTOCOL §4 batch): up to 20 calls in one signed request.

The outer call is authenticated once (checks 5-12 of §3.3: one signature,
one token read); its items inherit that credential and carry none of their
own. The whole feed is read and validated before anything runs
(:func:`read_feed`): more than 20 items is 952, an item calling ``batch.run``
or another method that is not batchable is 953, a feed that is not a JSON
array of query strings — or an item that names a credential, has no method,
or is not well-formed UTF-8 — is 100. The call's own checks 10, 11 and 13 and
every item's rate limits are then ONE shared-state step
(:class:`~openplatform.cache.CallCheck` ``batch``); an item over a limit is
that item's 4. Each item is then permission-checked and run like a call of
its own (check 14) — concurrently, or one after another with
``serial_only`` — and answers ``{"error_code": 0, "result": …}`` or its
error, in feed order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from openplatform.cache import SharedStateUnavailable
from openplatform.errors import ApiError, Code, Lang, entry
from openplatform.errors.internal import internal_failure
from openplatform.gateway.form import FormParams, parse_urlencoded
from openplatform.gateway.params import check_param_count, check_well_formed
from openplatform.methods.batch import BATCH_METHOD
from openplatform.methods.registry import MethodCall, MethodRegistry, MethodSpec
from openplatform.storage.errors import DatabaseUnavailable

__all__ = ["MAX_ITEMS", "BatchItem", "PlannedBatch", "item_call", "read_feed"]

MAX_ITEMS = 20
# What the outer call's signature covers, and items therefore may not carry.
_CREDENTIALS = frozenset({"api_key", "access_token", "session_key", "sig", "sign_method"})


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item of the feed, parsed. ``refusal``: its answer is known before
    it runs (an unknown method, a malformed or duplicated parameter)."""

    index: int
    method: str
    params: dict[str, str]
    spec: MethodSpec | None
    refusal: ApiError | None = None


def read_feed(method_feed: str, registry: MethodRegistry, max_params: int) -> list[BatchItem]:
    """The items of ``method_feed``, or the error of the whole batch (952,
    953, 100) — found before any item runs."""
    try:
        feed = orjson.loads(method_feed)
    except orjson.JSONDecodeError:
        feed = None
    if not isinstance(feed, list) or not all(isinstance(item, str) for item in feed):
        raise ApiError(Code.INVALID_PARAMETER, "method_feed must be a JSON array of query strings")
    if len(feed) > MAX_ITEMS:
        raise ApiError(Code.BATCH_TOO_MANY_ITEMS, f"{len(feed)} items given, at most {MAX_ITEMS}")
    return [_read_item(index, text, registry, max_params) for index, text in enumerate(feed)]


def _read_item(index: int, text: str, registry: MethodRegistry, max_params: int) -> BatchItem:
    form = FormParams()
    parse_urlencoded(text.encode("utf-8", "surrogatepass"), form)
    if form.problem is not None:
        raise ApiError(Code.INVALID_PARAMETER, f"method_feed item {index}: {form.problem}")
    named = sorted({key for key, _ in form.pairs} & _CREDENTIALS)
    if named:
        raise ApiError(
            Code.INVALID_PARAMETER,
            f"method_feed item {index} names {', '.join(named)}: "
            "items are signed by the batch call and act with its credential",
        )
    methods = [value for key, value in form.pairs if key == "method"]
    if len(methods) != 1 or not methods[0]:
        raise ApiError(Code.INVALID_PARAMETER, f"method_feed item {index} needs one method")
    method = methods[0]
    spec = registry.get(method)
    if method == BATCH_METHOD or (spec is not None and not spec.batchable):
        raise ApiError(
            Code.METHOD_NOT_BATCHABLE, f"method_feed item {index}: {method} is not batchable"
        )
    if spec is None:
        unknown = ApiError(Code.UNSUPPORTED_METHOD, f"unknown method {method[:100]!r}")
        return BatchItem(index, method, {}, None, unknown)
    try:
        check_param_count(form.count, max_params)
        params = check_well_formed(form.pairs, None, spec, path_method=None, bearer=None)
    except ApiError as refusal:
        return BatchItem(index, method, {}, spec, refusal)
    return BatchItem(index, method, params, spec)


RecordItem = Callable[[str, int, float], None]


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A :class:`~openplatform.methods.registry.BatchPlan`: the items, what
    the shared state said of each one's rate limits (``waits``: 0 let
    through, else seconds until it would be), and whether they run one after
    another. ``record`` counts each item's call (PROTOCOL §5 statistics)."""

    items: Sequence[BatchItem]
    waits: Sequence[int]
    serial: bool
    record: RecordItem

    async def run(self, call: MethodCall) -> list[dict[str, object]]:
        async def one(item: BatchItem, wait: int) -> dict[str, object]:
            started = time.perf_counter()
            answer = await _answer(call, item, wait)
            if item.spec is not None:
                code = int(str(answer["error_code"]))
                self.record(item.method, code, time.perf_counter() - started)
            return answer

        pairs = list(zip(self.items, self.waits, strict=True))
        if self.serial:
            return [await one(item, wait) for item, wait in pairs]
        return list(await asyncio.gather(*(one(item, wait) for item, wait in pairs)))


async def _answer(call: MethodCall, item: BatchItem, wait: int) -> dict[str, object]:
    lang, request_id = call.lang, call.request_id
    try:
        if item.refusal is not None:
            raise item.refusal
        assert item.spec is not None
        if wait:
            raise ApiError(
                Code.REQUEST_LIMIT_REACHED, f"this item's rate limit is reached; retry in {wait} s"
            )
        result = await item.spec.handler(item_call(call, item.spec, item.params))
        return {"error_code": 0, "result": result}
    except ApiError as error:
        return _error(error, lang)
    except (DatabaseUnavailable, SharedStateUnavailable) as outage:
        return _error(internal_failure(Code.SERVICE_UNAVAILABLE, request_id, outage), lang)
    except Exception as failure:
        return _error(internal_failure(Code.UNKNOWN, request_id, failure), lang)


def _error(error: ApiError, lang: Lang) -> dict[str, object]:
    body: dict[str, object] = {
        "error_code": int(error.code),
        "error_msg": entry(error.code).message(lang, error.fill),
    }
    if error.detail:
        body["error_detail"] = error.detail
    return body


def item_call(call: MethodCall, spec: MethodSpec, params: dict[str, str]) -> MethodCall:
    """The :class:`MethodCall` of an item: the batch call's credential, the
    item's arguments (check 14's permission first)."""
    spec.check_permission(call.user_id, call.scopes)
    return MethodCall(
        services=call.services,
        app=call.app,
        user_id=call.user_id,
        scopes=call.scopes,
        args=spec.parse_arguments(params),
        client_ip=call.client_ip,
        lang=call.lang,
        request_id=call.request_id,
    )
