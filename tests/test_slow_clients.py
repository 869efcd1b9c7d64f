""":mod:`openplatform.slow_clients`: the body must arrive in time; what comes
after it is not timed. (Real servers and sockets: tests/reliability/test_slow_clients.py.)"""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from openplatform.slow_clients import BodyTimeout, receive_in_time


async def test_a_body_that_stalls_is_late() -> None:
    messages: list[Message] = [{"type": "http.request", "body": b"a=", "more_body": True}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    timed = receive_in_time(receive, 0.05)
    assert (await timed())["body"] == b"a="
    with pytest.raises(BodyTimeout, match=r"did not arrive within 0\.05 s"):
        await timed()


async def test_after_the_body_nothing_is_timed() -> None:
    messages: list[Message] = [
        {"type": "http.disconnect"},
        {"type": "http.request", "body": b"a=1", "more_body": False},
    ]

    async def receive() -> Message:
        await asyncio.sleep(0.1 if len(messages) == 1 else 0)
        return messages.pop()

    timed = receive_in_time(receive, 0.05)
    assert (await timed())["body"] == b"a=1"
    assert (await timed())["type"] == "http.disconnect"
