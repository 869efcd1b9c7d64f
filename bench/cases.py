"""The cases of ``scripts/bench`` and the requests ``wrk`` sends for them.

A case is one server serving one kind of request on one data set. Requests
are written to a file, one a line (``METHOD<TAB>PATH<TAB>AUTHORIZATION<TAB>
BODY``), which ``requests.lua`` sends in turn; the script also checks every
answer's body against the case's pattern (a Lua pattern).
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

from seed import AppCredentials, TokenCredentials

from openplatform.gateway.signature import sign

__all__ = [
    "CASES",
    "CONNECTIONS",
    "Case",
    "Load",
    "SignedCalls",
    "basic_authorization",
    "write_introspections",
    "write_token_requests",
]

CONNECTIONS = (1, 16, 64, 256)
SIGNED_METHOD = "users.getLoggedInUser"
ECHO_METHOD = "bench.echo"  # gateway_targets.py: the §3.3 checks and no I/O
BATCH_METHOD = "batch.run"
BATCH_ITEMS = 20


@dataclass(frozen=True)
class Load:
    """What the requests of a case are and what every answer must contain."""

    kind: str  # get | signed | token | introspect | batch
    expect: str  # a Lua pattern each answer's body matches
    reject: str = ""  # a Lua pattern no answer's body may match
    method: str = SIGNED_METHOD  # the open API method of signed loads


GET_HELLO = Load("get", expect='"hello"')
SIGNED = Load("signed", expect='^{"uid":%d+}$')
ECHO = Load("signed", expect='^{"app_id":%d+}$', method=ECHO_METHOD)
TOKEN = Load("token", expect='"access_token":%s*"')
INTROSPECT = Load("introspect", expect='"active":%s*true')
# Every item answered and none failed (a failed item carries error_msg).
BATCH = Load("batch", expect='^%[{"error_code":0', reject='"error_msg"', method=BATCH_METHOD)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    plot: str  # which figure: "api" or "oauth"
    server: str  # raw | hello | gateway | openplatform | a peer's name
    data: str  # the data set: sqlite-1k | sqlite-1M | postgres-redis | a peer's name
    load: Load
    connections: tuple[int, ...] = CONNECTIONS
    paced: bool = False  # also measure p99 at half the case's peak throughput
    full_only: bool = False  # skipped by --quick


CASES = (
    Case("a", "raw ASGI hello (Granian)", "api", "raw", "none", GET_HELLO),
    Case(
        "hello", "Starlette JSON hello (Granian)", "api", "hello", "none", GET_HELLO, full_only=True
    ),
    Case(
        "b",
        "signed getLoggedInUser, SQLite + memory",
        "api",
        "openplatform",
        "sqlite-1k",
        SIGNED,
        paced=True,
    ),
    Case(
        "c",
        "signed getLoggedInUser, PostgreSQL + Redis",
        "api",
        "openplatform",
        "postgres-redis",
        SIGNED,
        paced=True,
    ),
    Case(
        "gateway",
        "signed bench.echo (checks only), SQLite + memory",
        "api",
        "gateway",
        "sqlite-1k",
        ECHO,
        full_only=True,
    ),
    Case(
        "f",
        "batch.run of 20 getLoggedInUser, SQLite + memory",
        "api",
        "openplatform",
        "sqlite-1k",
        BATCH,
    ),
    Case("d", "token client_credentials, SQLite", "oauth", "openplatform", "sqlite-1k", TOKEN),
    Case("e", "introspection, SQLite", "oauth", "openplatform", "sqlite-1k", INTROSPECT),
    Case(
        "g-b",
        "(b) with 1M tokens / 100k apps",
        "api",
        "openplatform",
        "sqlite-1M",
        SIGNED,
        full_only=True,
    ),
    Case(
        "g-d",
        "(d) with 1M tokens / 100k apps",
        "oauth",
        "openplatform",
        "sqlite-1M",
        TOKEN,
        full_only=True,
    ),
    Case(
        "g-e",
        "(e) with 1M tokens / 100k apps",
        "oauth",
        "openplatform",
        "sqlite-1M",
        INTROSPECT,
        full_only=True,
    ),
    Case(
        "authlib-d", "Authlib + Flask token", "oauth", "authlib", "authlib", TOKEN, full_only=True
    ),
    Case(
        "authlib-e",
        "Authlib + Flask introspection",
        "oauth",
        "authlib",
        "authlib",
        INTROSPECT,
        full_only=True,
    ),
    Case(
        "dot-plain-d",
        "DOT token, plain secrets",
        "oauth",
        "dot",
        "dot-plain",
        TOKEN,
        full_only=True,
    ),
    Case(
        "dot-plain-e",
        "DOT introspection, plain secrets",
        "oauth",
        "dot",
        "dot-plain",
        INTROSPECT,
        full_only=True,
    ),
    # A hashed secret costs DOT about 0.3-0.6 s per check: 16 connections
    # and more would only queue into wrk's timeouts.
    Case(
        "dot-hashed-d",
        "DOT token, hashed secrets (default)",
        "oauth",
        "dot",
        "dot-hashed",
        TOKEN,
        (1, 4),
        full_only=True,
    ),
    Case(
        "dot-hashed-e",
        "DOT introspection, hashed secrets (default)",
        "oauth",
        "dot",
        "dot-hashed",
        INTROSPECT,
        (1, 4),
        full_only=True,
    ),
)


def basic_authorization(app: AppCredentials) -> str:
    """``client_secret_basic`` (RFC 6749 §2.3.1: each part form-encoded first)."""
    pair = f"{quote_plus(app.api_key)}:{quote_plus(app.secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def write_token_requests(path: Path, apps: Sequence[AppCredentials], endpoint: str) -> None:
    """One client_credentials request per app, each authenticated as that app."""
    with path.open("w") as out:
        for app in apps:
            out.write(
                f"POST\t{endpoint}\t{basic_authorization(app)}\tgrant_type=client_credentials\n"
            )


def write_introspections(path: Path, tokens: Sequence[TokenCredentials], endpoint: str) -> None:
    """One introspection per token, asked by the token's own app (RFC 7662 §2.2:
    any other app would learn ``active: false``)."""
    with path.open("w") as out:
        for token in tokens:
            authorization = basic_authorization(token.app)
            out.write(f"POST\t{endpoint}\t{authorization}\ttoken={token.access_token}\n")


class SignedCalls:
    """Distinct signed calls (PROTOCOL §3.2, md5) acting for the given tokens'
    users, each sent once: a second sending would be a replay (107).

    ``call_id`` must increase per token (PROTOCOL §3.3 check 11) in the order
    the server checks the calls. It comes from one counter for the whole
    bench, and the calls are split into one file per connection, each with
    its own tokens (wrk runs one thread per connection, each reading its own
    file): a connection sends a call only once the previous one was answered,
    so a token's calls reach the server in order whatever the latency.
    """

    def __init__(self, tokens: Sequence[TokenCredentials]) -> None:
        self._tokens = tokens
        self._call_id = time.time_ns() // 1000

    def write(self, prefix: Path, count: int, load: Load, connections: int) -> list[Path]:
        """``count`` calls of ``load.method`` (a ``batch.run`` of ``BATCH_ITEMS``
        ``users.getLoggedInUser`` for the batch load) split over ``connections``
        files ``<prefix>.1`` … ``<prefix>.<connections>``."""
        if connections > len(self._tokens):
            raise ValueError(f"{connections} connections need as many tokens")
        extra: tuple[tuple[str, str], ...] = ()
        if load.kind == "batch":
            extra = (("method_feed", json.dumps([f"method={SIGNED_METHOD}"] * BATCH_ITEMS)),)
        encoded_extra = "".join(f"&{key}={quote(value, safe='')}" for key, value in extra)
        timestamp = str(int(time.time()))
        # Connections do not all go at the same pace: room for the faster ones.
        per_connection = math.ceil(count / connections * 1.5) + 10
        paths = []
        for number in range(1, connections + 1):
            tokens = self._tokens[number - 1 :: connections]
            path = prefix.with_name(f"{prefix.name}.{number}")
            with path.open("w") as out:
                for n in range(per_connection):
                    token = tokens[n % len(tokens)]
                    self._call_id += 1
                    # api_key (hex), tokens (base64url) and digits need no form encoding.
                    params = (
                        ("api_key", token.app.api_key),
                        ("access_token", token.access_token),
                        ("call_id", str(self._call_id)),
                        ("timestamp", timestamp),
                    )
                    sig = sign((*params, *extra, ("method", load.method)), token.app.secret)
                    body = "&".join(f"{key}={value}" for key, value in params)
                    out.write(f"POST\t/rest/2.0/{load.method}\t\t{body}{encoded_extra}&sig={sig}\n")
            paths.append(path)
        return paths


def signed_count(rate_cap: float, seconds: float) -> int:
    """How many distinct calls a run of ``seconds`` at most ``rate_cap``/s sends."""
    return math.ceil(rate_cap * (seconds + 1))
