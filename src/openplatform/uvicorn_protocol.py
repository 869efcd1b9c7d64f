"""uvicorn's HTTP/1.1 protocol with the header read timeout it lacks (see
:mod:`openplatform.slow_clients`): a connection must bring a request's
headers within ``OPENPLATFORM_HEADER_TIMEOUT_S`` of being opened, or of the
previous answer, or it is closed. Only ``openplatform serve --server uvicorn``
imports this module."""

from __future__ import annotations

import asyncio
import functools

from uvicorn.protocols.http.h11_impl import H11Protocol

from openplatform.config import Settings

__all__ = ["HeaderTimeoutH11Protocol"]


@functools.cache
def _header_timeout_s() -> float:
    # Each worker process reads it (uvicorn's workers are spawned, not forked).
    return Settings.from_env().header_timeout_s


class HeaderTimeoutH11Protocol(H11Protocol):
    """The timer runs while no request is in progress: from the connection's
    start, and again after each answer, until the next request's headers
    are in. A client that sends nothing, half a request line, or never
    finishes a body the answer did not wait for, is disconnected."""

    _headers_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not cycle:  # a new request's headers are in
            self._stop_waiting()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._await_headers()

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._headers_timer = self.loop.call_later(_header_timeout_s(), self._too_late)

    def _stop_waiting(self) -> None:
        if self._headers_timer is not None:
            self._headers_timer.cancel()
            self._headers_timer = None

    def _too_late(self) -> None:
        self._headers_timer = None
        if not self.transport.is_closing():
            self.transport.close()
