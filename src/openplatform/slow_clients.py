"""Slow clients (issue 12): a request's headers and then its body must arrive
in time, or a client that trickles bytes (or stalls) holds a connection and
a worker's attention forever.

Headers are the ASGI server's to time: Granian has a header read timeout of
its own (``HTTP1Settings.header_read_timeout``); uvicorn has none, so
:class:`HeaderTimeoutH11Protocol` adds one. Neither times the body, so the
application does: :func:`receive_in_time` bounds the whole body (from the
moment the headers were read) by ``OPENPLATFORM_BODY_TIMEOUT_S``, and a late
body is :class:`BodyTimeout` — answered 100 (10000 on the OAuth endpoints),
after which the server closes the connection, since the request never ended.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive

__all__ = ["CUT_OFF", "BodyTimeout", "receive_in_time"]

# What a body that ended before it was complete is answered (100): the client
# went away, or its framing broke (Granian reports a malformed chunked body
# as a disconnect) — whoever is still there learns why.
CUT_OFF = "the request body was cut off"


class BodyTimeout(Exception):
    """The request body did not arrive within the body timeout."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request body did not arrive within {timeout_s:g} s")


def receive_in_time(receive: Receive, timeout_s: float) -> Receive:
    """``receive``, raising :class:`BodyTimeout` once the body is not complete
    ``timeout_s`` after now. What comes after the body (a disconnect) is not timed."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    body_done = False

    async def receive_body() -> Message:
        nonlocal body_done
        if body_done:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyTimeout(timeout_s) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    return receive_body
