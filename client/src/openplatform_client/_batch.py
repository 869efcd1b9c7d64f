"""Batches (PROTOCOL §4 ``batch.run``): calls queued on a :class:`Batch` and
sent as one request; each queued call returns a :class:`BatchItem`, resolved
when the batch has been sent.

The rules of PROTOCOL §4 that belong to the SDK: ``begin_batch()`` while a
batch is open is 950, ``end_batch()`` without one is 951, and a 21st item is
952, raised when it is queued — before anything is sent. ``batch.run`` itself
may not be queued (953). Items are URL-encoded query strings with their
method and parameters only: they inherit the batch's credentials and carry
no signature.
"""

from __future__ import annotations

import json
from typing import Generic, TypeVar
from urllib.parse import urlencode

from openplatform_client._calls import PreparedCall, raw_call
from openplatform_client._catalogue import Lang
from openplatform_client._encoding import ParamValue, encode_params
from openplatform_client._exceptions import APIError, APIResponseError, BatchError, api_error
from openplatform_client._methods import Application, Data, Users
from openplatform_client._results import as_list, as_mapping

__all__ = ["MAX_BATCH_ITEMS", "Batch", "BatchItem", "batch_error"]

T = TypeVar("T")

MAX_BATCH_ITEMS = 20
BATCH_METHOD = "batch.run"
_NOT_BATCHABLE = frozenset({BATCH_METHOD})


def batch_error(code: int, detail: str | None = None) -> BatchError:
    """One of the SDK's own batch errors (950–953), with both catalogue messages."""
    error = api_error(code, error_detail=detail, method=BATCH_METHOD)
    assert isinstance(error, BatchError)
    return error


class BatchItem(Generic[T]):
    """The future result of a call queued in a batch."""

    def __init__(self, call: PreparedCall[T]) -> None:
        self.method = call.method
        self._call = call
        self._done = False
        self._result: T | None = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """True once the batch was answered (or failed as a whole)."""
        return self._done

    def result(self) -> T:
        """The call's result, or its error raised (an :class:`APIError`)."""
        if not self._done:
            raise RuntimeError(f"{self.method}: the batch has not been sent")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def exception(self) -> BaseException | None:
        """The call's error, or None when it succeeded."""
        if not self._done:
            raise RuntimeError(f"{self.method}: the batch has not been sent")
        return self._error

    def _resolve(self, entry: object, lang: Lang, request_id: str | None) -> None:
        try:
            item = as_mapping(entry, "a batch item")
            code = item.get("error_code")
            if code == 0:
                self._result = self._call.decode(item.get("result"))
            elif isinstance(code, int):
                message = item.get("error_msg")
                detail = item.get("error_detail")
                self._error = api_error(
                    code,
                    message if isinstance(message, str) else None,
                    lang=lang,
                    error_detail=detail if isinstance(detail, str) else None,
                    request_id=request_id,
                    method=self.method,
                )
            else:
                self._error = APIResponseError(
                    "a batch item without error_code",
                    http_status=200,
                    body=repr(entry),
                    request_id=request_id,
                )
        except APIResponseError as error:
            self._error = error
        self._done = True

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._done = True

    def __repr__(self) -> str:
        state = "pending" if not self._done else ("failed" if self._error else "done")
        return f"<BatchItem {self.method} {state}>"


class Batch:
    """Calls to send together: ``batch.call(...)``, ``batch.users.…``,
    ``batch.data.…`` queue a call and return its :class:`BatchItem`."""

    def __init__(self, *, serial_only: bool = False) -> None:
        self.serial_only = serial_only
        self.users: Users[Batch] = Users(self)
        self.application: Application[Batch] = Application(self)
        self.data: Data[Batch] = Data(self)
        self._items: list[BatchItem[object]] = []
        self._sent = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> list[BatchItem[object]]:
        return list(self._items)

    def call(
        self, method: str, /, *, idempotent: bool | None = None, **params: ParamValue
    ) -> BatchItem[object]:
        """Queue ``method`` with ``params`` (encoded as for :meth:`Client.call`)."""
        return self._execute(raw_call(method, encode_params(params), idempotent))

    def _execute(self, call: PreparedCall[T]) -> BatchItem[T]:
        if self._sent:
            raise RuntimeError("this batch was already sent")
        if call.method in _NOT_BATCHABLE:
            raise batch_error(953, f"{call.method} cannot be queued in a batch")
        if len(self._items) >= MAX_BATCH_ITEMS:
            raise batch_error(952, f"a batch holds at most {MAX_BATCH_ITEMS} items")
        item = BatchItem(call)
        self._items.append(item)  # type: ignore[arg-type]
        return item

    def _outer_call(self) -> PreparedCall[object]:
        """The ``batch.run`` call: the feed in queue order, idempotent when
        every item is."""
        if len(self._items) > MAX_BATCH_ITEMS:
            raise batch_error(952, f"a batch holds at most {MAX_BATCH_ITEMS} items")
        feed = [
            urlencode([("method", item._call.method), *item._call.params.items()])
            for item in self._items
        ]
        params = {
            "method_feed": json.dumps(feed),
            "serial_only": "true" if self.serial_only else "false",
        }
        self._sent = True
        return raw_call(BATCH_METHOD, params, all(item._call.idempotent for item in self._items))

    def _resolve(self, result: object, lang: Lang, request_id: str | None) -> None:
        entries = as_list(result, "a list of batch results")
        if len(entries) != len(self._items):
            error = APIResponseError(
                f"batch.run answered {len(entries)} results for {len(self._items)} items",
                http_status=200,
                body=repr(result)[:2000],
                request_id=request_id,
            )
            self._fail(error)
            raise error
        for item, entry in zip(self._items, entries, strict=True):
            item._resolve(entry, lang, request_id)

    def _fail(self, error: BaseException) -> None:
        for item in self._items:
            if not item.done():
                item._fail(error)

    def errors(self) -> list[APIError]:
        """The items' API errors, in queue order."""
        return [e for item in self._items if isinstance(e := item.exception(), APIError)]

    def __repr__(self) -> str:
        return f"<Batch {len(self._items)} items{' sent' if self._sent else ''}>"
