"""A scripted stand-in for the gateway (an httpx MockTransport): it records
every request, checks each signature as the real gateway does, and answers
from a script — to test what a live server cannot be made to answer on
demand (2, 805, Retry-After, lost connections) and ``batch.run``, which the
server does not have yet."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx

from openplatform.errors import CATALOGUE
from openplatform.gateway.signature import verify_signature

API_KEY = "ak_fake"
SECRET = "fake-secret"
BASE_URL = "http://fake.test"


@dataclass(frozen=True)
class Received:
    method: str
    params: dict[str, str]
    headers: httpx.Headers


def answer(result: object, *, request_id: str = "req-ok") -> httpx.Response:
    headers = {"X-Error-Code": "0", "X-Request-Id": request_id}
    return httpx.Response(200, json=result, headers=headers)


def error(
    code: int,
    *,
    retry_after: str | None = None,
    detail: str | None = None,
    legacy_http_200: bool = False,
    request_id: str = "req-err",
) -> httpx.Response:
    """An error as the gateway renders it (PROTOCOL §1)."""
    entry = CATALOGUE[code]
    body: dict[str, object] = {"error_code": code, "error_msg": entry.en}
    if detail:
        body["error_detail"] = detail
    body["request_args"] = []
    headers = {"X-Error-Code": str(code), "X-Request-Id": request_id}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return httpx.Response(200 if legacy_http_200 else entry.http_status, json=body, headers=headers)


Reply = httpx.Response | Exception
Script = Callable[[Received], Reply]


@dataclass
class FakeGateway:
    """Answers with ``replies`` in turn (the last one repeats), or ``script``."""

    replies: list[Reply] = field(default_factory=list)
    script: Script | None = None
    received: list[Received] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.startswith("/rest/2.0/"), request.url
        method = request.url.path.removeprefix("/rest/2.0/")
        pairs = parse_qsl(request.content.decode("ascii"), keep_blank_values=True)
        params = dict(pairs)
        assert len(params) == len(pairs), "a parameter was sent twice"
        if "sig" in params:
            assert verify_signature(
                [*pairs, ("method", method)],
                params["sig"],
                SECRET,
                "hmac-sha256" if params.get("sign_method") == "hmac-sha256" else "md5",
            ), "bad signature"
        received = Received(method, params, request.headers)
        self.received.append(received)
        if self.script is not None:
            reply = self.script(received)
        else:
            reply = self.replies[min(len(self.received), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def async_transport(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            await request.aread()
            return self.handle(request)

        return httpx.MockTransport(handle)

    @property
    def methods(self) -> list[str]:
        return [r.method for r in self.received]


def batch_script(item_answer: Callable[[str, dict[str, str]], dict[str, object]]) -> Script:
    """``batch.run`` as PROTOCOL §4 specifies it: ``method_feed`` a JSON array
    of URL-encoded query strings; one ``{"error_code": …}`` per item, in order."""

    def script(received: Received) -> httpx.Response:
        assert received.method == "batch.run"
        feed = json.loads(received.params["method_feed"])
        results = []
        for entry in feed:
            item = dict(parse_qsl(entry, keep_blank_values=True))
            for inherited in ("api_key", "sig", "timestamp", "call_id", "access_token"):
                assert inherited not in item, f"a batch item carries {inherited}"
            method = item.pop("method")
            results.append(item_answer(method, item))
        return answer(results)

    return script
