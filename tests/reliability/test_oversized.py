"""Oversized bodies against a real ``openplatform serve`` (issue 12, hostile
input): every route that reads a body refuses one over its limit — the open
API and the OAuth endpoints 1 MiB, the admin API 256 KiB, the console's forms
256 KiB — with its code (100; 10000 on the OAuth endpoints; the form again on
a page) as soon as the limit is passed, declared (``Content-Length``) or
streamed (chunked); so fifty 50 MB uploads leave the server's memory where
it was. (The limits of single values and of the parameter count — 100 and
105 — are tested in tests/gateway/test_pipeline.py.)"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from openplatform.config import Settings
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import Database
from openplatform.storage.migrate import upgrade_async
from tests.conftest import run_in_thread
from tests.server_process import server_process, tree_rss_bytes

UPLOAD = 50 * 1024 * 1024
CHUNK = b"a" * 65536
GENEROUS_S = 20.0
# What fifty refused 50 MB uploads may add to the server's resident memory
# (allocator noise and caches; the uploads themselves would be 2.5 GB).
RSS_GROWTH_BOUND = 50 * 1024 * 1024


@dataclass
class Server:
    base: str
    pid: int
    admin_token: str


async def _seed(settings: Settings) -> str:
    await upgrade_async(settings)
    async with Database.from_settings(settings) as database:
        await database.apps.create(AppSettings(name="Oversized"))
        return await database.admin_tokens.create("oversized")


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data = tmp_path_factory.mktemp(f"oversized-{request.param}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    env["OPENPLATFORM_DATA_DIR"] = str(data / "data")
    env["OPENPLATFORM_HEADER_TIMEOUT_S"] = "2"
    env["OPENPLATFORM_BODY_TIMEOUT_S"] = "5"
    token = run_in_thread(_seed(Settings.from_env(env)))
    with server_process(env, data / "serve.log", "--server", request.param) as (proc, base):
        yield Server(base, proc.pid, token)


@dataclass
class Upload:
    sent: int  # body bytes sent before the answer came
    status: int
    headers: dict[str, str]


def upload(server: Server, path: str, *, chunked: bool, headers: str = "") -> Upload:
    """POST up to 50 MB of form body to ``path``, stopping as soon as the
    server answers (or stops reading); the answer's status and headers."""
    url = httpx.URL(server.base)
    assert url.port is not None
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {UPLOAD}"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}{framing}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    ).encode()
    frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if chunked else CHUNK
    with socket.create_connection((url.host, url.port), timeout=GENEROUS_S) as sock:
        sock.sendall(head + (b"2\r\na=\r\n" if chunked else b"a="))
        sock.setblocking(False)
        sent, pending = 0, memoryview(b"")
        while sent < UPLOAD:
            readable, writable, _ = select.select([sock], [sock], [], GENEROUS_S)
            assert readable or writable, "the server neither reads nor answers"
            if readable:
                break
            if not pending:
                pending = memoryview(frame)
            try:
                written = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending = pending[written:]
            sent += written
        sock.setblocking(True)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer after {sent} bytes"
            answer += chunk
    lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return Upload(sent, int(lines[0].split(" ")[1]), {k.lower(): v for k, v in fields.items()})


def _uploads(server: Server) -> list[tuple[str, str, str]]:
    """(path, extra headers, the code of the refusal; "" for a page)."""
    admin = f"Authorization: Bearer {server.admin_token}\r\n"
    return [
        ("/rest/2.0/users.getInfo", "", "100"),
        ("/oauth/2.0/token", "", "10000"),
        ("/admin/api/apps", admin, "100"),
        ("/signin", "", ""),
        ("/healthz", "", "100"),  # a GET route: its body is never read
    ]


def test_oversized_bodies_are_refused_early_and_memory_stays_bounded(server: Server) -> None:
    def barrage() -> None:
        for path, headers, code in _uploads(server):
            for chunked in (True, False):
                answer = upload(server, path, chunked=chunked, headers=headers)
                assert answer.sent < UPLOAD, (path, chunked)
                assert answer.status < 500, (path, chunked, answer)
                if code:
                    assert (answer.status, answer.headers["x-error-code"]) == (400, code)

    barrage()  # first requests warm caches and pools up
    before = tree_rss_bytes(server.pid)
    for _ in range(5):
        barrage()
    after = tree_rss_bytes(server.pid)
    assert after - before < RSS_GROWTH_BOUND, (before, after)
    with httpx.Client(base_url=server.base, timeout=GENEROUS_S) as http:
        assert http.get("/healthz").status_code == 200
        apps = http.get(
            "/admin/api/apps", headers={"Authorization": f"Bearer {server.admin_token}"}
        )
        assert apps.status_code == 200 and len(apps.json()["items"]) == 1


@pytest.mark.parametrize(
    ("path", "code"), [("/rest/2.0/users.getInfo", "100"), ("/oauth/2.0/token", "10000")]
)
def test_a_broken_chunked_body_is_answered_with_a_code(
    server: Server, path: str, code: str
) -> None:
    """Granian reports a malformed chunked body as a disconnect, and answered
    500 itself while the application sent nothing; uvicorn refuses it (400)."""
    url = httpx.URL(server.base)
    assert url.port is not None
    with socket.create_connection((url.host, url.port), timeout=GENEROUS_S) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n"
            "a=1&not-a-chunk-size\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    assert head.startswith("http/1.1 400 "), answer
    if "server: granian" in head:
        assert f"x-error-code: {code}" in head, answer


def test_a_megabyte_of_tiny_parameters_costs_little_memory(server: Server) -> None:
    """``a&a&…`` within the size limit: half a million parameters, which
    check 3 (105) and the OAuth endpoints (10000) count without keeping —
    the server's peak memory does not move (it once grew some 36 MiB a request)."""
    body = b"a&" * 500_000
    with httpx.Client(base_url=server.base, timeout=GENEROUS_S) as http:
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        http.post("/rest/2.0/users.getInfo", content=b"a=1", headers=form)  # warm
        peak = tree_rss_bytes(server.pid, "VmHWM")
        for _ in range(3):
            for path, code in (("/rest/2.0/users.getInfo", "105"), ("/oauth/2.0/token", "10000")):
                answer = http.post(path, content=body, headers=form)
                assert (answer.status_code, answer.headers["x-error-code"]) == (400, code)
    assert tree_rss_bytes(server.pid, "VmHWM") - peak < 16 * 1024 * 1024


def _raw(server: Server, request: bytes) -> tuple[int, bytes]:
    """One raw request; the status and the whole answer (the server closes).
    Status 0: the connection was reset (refused with unread data) unanswered."""
    url = httpx.URL(server.base)
    assert url.port is not None
    with socket.create_connection((url.host, url.port), timeout=GENEROUS_S) as sock:
        # refused before it was all sent: the answer may still be there
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return (int(answer.split(b" ", 2)[1]) if answer else 0), answer


def test_oversized_headers_and_urls_are_refused_by_the_server(server: Server) -> None:
    """Past the ASGI server's own limits the application never sees the
    request: the refusal (4xx, no code) is the server's, never a 5xx."""
    big = b"a" * 600_000
    for request in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + big + b"\r\n\r\n",
        b"GET /rest/2.0/users.getInfo?" + big + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 20_000 + b"\r\n",
        b"GET /rest/2.0/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \xff\x00\x01\r\n\r\n",
    ):
        status, answer = _raw(server, request)
        assert status in (0, 400, 413, 414, 431), answer[:200]
    assert httpx.get(server.base + "/healthz", timeout=GENEROUS_S).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../etc/passwd",
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..\\..\\..\\etc\\passwd",
        "/static/%00",
        "/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_path_traversal_finds_nothing(server: Server, path: str) -> None:
    status, answer = _raw(
        server, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert status in (400, 404), answer[:300]
    assert b"root:" not in answer
    if status == 404:
        assert b"x-error-code: 3" in answer.lower()
