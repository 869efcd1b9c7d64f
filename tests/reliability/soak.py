"""The soak (``scripts/soak``): mixed load against two separate server
processes on PostgreSQL + Redis while the database's connections are killed
and Redis is restarted at random moments; then every acknowledged write is
read back.

Load (concurrent clients, each request sent to either server at random, as
a balancer would): the authorization-code flow over HTTP as a browser and a
client drive it (sign in, approve, exchange), refreshes, bearer calls, signed
calls, data writes (``setHashValue`` with unique keys and values,
``createObject``, ``incHashValue`` on a counter per client) and ``batch.run``
calls of writes.

Chaos (alternating, at random moments): ``pg_terminate_backend`` on every
connection to the soak's own database, and SIGKILL + start of the soak's own
``redis-server`` (it comes back empty).

Check: every write answered with error_code 0 must be read back as written
(a lost write otherwise); a counter must hold at least its acknowledged
increments and at most those plus the ones whose answer was an error or
never came (such a write may or may not have happened). Every answer must be
an expected one: 0, 2 (service temporarily unavailable) or 805 (database
failure after retries) for API calls — never 1, a 500 without a code, or any
other code.

A request that gets no answer at all (the connection dropped, or nothing
within 30 s) fails the soak too: no outage may hang or cut a request.

Usage: ``scripts/soak [--minutes N] [--seconds S] [--clients C] [--json]``.
The exit status is 1 when a write was lost, a counter is out of bounds, an
answer was unexpected or a request got no answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from openplatform.oauth.rfc7636 import s256_challenge
from tests.oauth.browser import find_form, query_of
from tests.reliability.platform import (
    App,
    admin_connect,
    create_database,
    drop_database,
    seed,
    server_env,
    serving,
    signed,
)
from tests.throwaway_services import throwaway_redis

REDIRECT_URI = "https://client.example/cb"
PASSWORD = "soak password, long enough"
METHOD = "application.getPublicInfo"
# API answers that are fine under chaos: success, service temporarily
# unavailable (Redis or the database away), database failure after retries
EXPECTED = frozenset({0, 2, 805})
OAUTH_EXPECTED = frozenset({0, 2})
TIMEOUT_S = 30.0


@dataclass
class Tally:
    """What the clients saw."""

    requests: int = 0
    no_answer: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    item_codes: Counter[int] = field(default_factory=Counter)  # of batch items
    no_answer_kinds: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    # acknowledged writes, checked at the end
    hashes: dict[str, str] = field(default_factory=dict)  # key -> value
    objects: dict[int, str] = field(default_factory=dict)  # obj_id -> body
    increments: Counter[str] = field(default_factory=Counter)  # counter key -> acked
    unsure_increments: Counter[str] = field(default_factory=Counter)
    batch_items: int = 0
    chaos: Counter[str] = field(default_factory=Counter)
    error_moments: set[int] = field(default_factory=set)  # tenths of a second with an error
    killed_connections: int = 0


class Load:
    def __init__(
        self, urls: list[str], app: App, users: list[str], tally: Tally, deadline: float
    ) -> None:
        self.urls = urls
        self.app = app
        self.users = users
        self.tally = tally
        self.deadline = deadline
        self.unique = 0
        self.started = time.monotonic()

    def url(self, path: str) -> str:
        return random.choice(self.urls) + path

    def next_id(self) -> str:
        self.unique += 1
        return f"{self.unique}-{secrets.token_hex(4)}"

    async def send(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        expected: frozenset[int],
        **kwargs: Any,
    ) -> tuple[int, httpx.Response] | None:
        """One request: its error code and response, or None without an answer."""
        self.tally.requests += 1
        self.tally.by_kind[kind] += 1
        started = time.perf_counter()
        try:
            response = await client.request(method, self.url(path), **kwargs)
        except httpx.TransportError as exc:
            self.tally.no_answer += 1
            self.tally.no_answer_kinds[type(exc).__name__] += 1
            return None
        self.tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        code = answer_code(response)
        self.tally.codes[code] += 1
        if code != 0:
            self.tally.error_moments.add(int((time.monotonic() - self.started) * 10))
        if code not in expected or (response.status_code == 500 and code != 2):
            self.tally.unexpected.append(
                f"{kind}: HTTP {response.status_code} code {code}: {response.text[:300]}"
            )
        return code, response

    # --- the kinds of load ------------------------------------------------

    async def api(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        params: dict[str, str],
        token: str | None = None,
    ) -> tuple[int, httpx.Response] | None:
        if token is None:
            data = signed(self.app, method, params)
            return await self.send(client, kind, "POST", f"/rest/2.0/{method}", EXPECTED, data=data)
        return await self.send(
            client,
            kind,
            "POST",
            f"/rest/2.0/{method}",
            EXPECTED,
            data=params,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def authorize(self, browser: httpx.AsyncClient, username: str) -> str | None:
        """Sign in (once per browser session) and approve: the code, or None
        when an answer was an error (counted) or did not come."""
        verifier = secrets.token_urlsafe(48)
        params = {
            "response_type": "code",
            "client_id": self.app.api_key,
            "redirect_uri": REDIRECT_URI,
            "scope": "basic data",
            "state": self.next_id(),
            "code_challenge": s256_challenge(verifier),
            "code_challenge_method": "S256",
        }
        sent = await self.send(
            browser, "oauth.authorize", "GET", "/oauth/2.0/authorize", OAUTH_EXPECTED, params=params
        )
        for _ in range(3):
            if sent is None or sent[0] != 0:
                return None
            response = sent[1]
            if response.status_code in (302, 303):
                query = query_of(response.headers["location"])
                if "code" not in query:
                    self.tally.unexpected.append(f"oauth.authorize: redirect {query}")
                    return None
                return await self.exchange(browser, query["code"], verifier)
            form = find_form(response.text)
            if ("action", "login") in form.fields:
                data = form.data(username=username, password=PASSWORD)
            else:
                data = form.data(action="approve")
            sent = await self.send(
                browser, "oauth.authorize", "POST", form.action, OAUTH_EXPECTED, data=dict(data)
            )
        self.tally.unexpected.append("oauth.authorize: no redirect after three pages")
        return None

    async def exchange(self, client: httpx.AsyncClient, code: str, verifier: str) -> str | None:
        """The refresh token the code brings (and a bearer call with its access token)."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        }
        return await self.token(client, "oauth.exchange", data)

    async def token(self, client: httpx.AsyncClient, kind: str, data: dict[str, str]) -> str | None:
        sent = await self.send(
            client,
            kind,
            "POST",
            "/oauth/2.0/token",
            OAUTH_EXPECTED,
            data=data,
            auth=(self.app.api_key, self.app.secret),
        )
        if sent is None or sent[0] != 0:
            return None
        body = sent[1].json()
        await self.api(client, "bearer call", "users.getLoggedInUser", {}, body["access_token"])
        refresh: str = body["refresh_token"]
        return refresh

    async def client(self, number: int) -> None:
        counter = f"counter-{number}"
        username = self.users[number % len(self.users)]
        refresh_token: str | None = None
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            while time.monotonic() < self.deadline:
                roll = random.random()
                if roll < 0.15:
                    if refresh_token is None:
                        refresh_token = await self.authorize(client, username)
                    else:
                        refresh_token = await self.token(
                            client,
                            "oauth.refresh",
                            {"grant_type": "refresh_token", "refresh_token": refresh_token},
                        )
                elif roll < 0.30:
                    await self.api(
                        client, "signed call", METHOD, {"application_id": str(self.app.app_id)}
                    )
                elif roll < 0.55:
                    key, value = f"h{number}-{self.next_id()}", secrets.token_hex(12)
                    params = {"obj_type": "kv", "prop_name": "s", "key": key, "value": value}
                    sent = await self.api(client, "data.setHashValue", "data.setHashValue", params)
                    if sent is not None and sent[0] == 0:
                        self.tally.hashes[key] = value
                elif roll < 0.70:
                    params = {"obj_type": "kv", "prop_name": "n", "key": counter}
                    sent = await self.api(client, "data.incHashValue", "data.incHashValue", params)
                    if sent is not None and sent[0] == 0:
                        self.tally.increments[counter] += 1
                    else:
                        self.tally.unsure_increments[counter] += 1
                elif roll < 0.85:
                    body = secrets.token_hex(12)
                    params = {"obj_type": "note", "properties": json.dumps({"body": body})}
                    sent = await self.api(client, "data.createObject", "data.createObject", params)
                    if sent is not None and sent[0] == 0:
                        self.tally.objects[int(sent[1].json()["obj_id"])] = body
                else:
                    await self.batch(client, number)

    async def batch(self, client: httpx.AsyncClient, number: int) -> None:
        writes = [
            (f"b{number}-{self.next_id()}", secrets.token_hex(12))
            for _ in range(random.randint(2, 6))
        ]
        feed = [
            urlencode(
                {
                    "method": "data.setHashValue",
                    "obj_type": "kv",
                    "prop_name": "s",
                    "key": k,
                    "value": v,
                }
            )
            for k, v in writes
        ]
        params = {"method_feed": json.dumps(feed), "serial_only": random.choice(["true", "false"])}
        sent = await self.api(client, "batch.run", "batch.run", params)
        if sent is None or sent[0] != 0:
            return
        items = sent[1].json()
        for (key, value), item in zip(writes, items, strict=True):
            code = int(item["error_code"])
            self.tally.item_codes[code] += 1
            if code not in EXPECTED:
                self.tally.unexpected.append(f"batch item: {item}")
            if code == 0:
                self.tally.hashes[key] = value
                self.tally.batch_items += 1


def answer_code(response: httpx.Response) -> int:
    """The error code of an answer: ``X-Error-Code``, the OAuth JSON
    ``error_code``, or 0 for a page or redirect of the flow."""
    header = response.headers.get("X-Error-Code")
    if header is not None:
        return int(header)
    if response.status_code in (200, 302, 303):
        return 0
    try:
        return int(response.json()["error_code"])
    except (ValueError, KeyError, TypeError):
        return -response.status_code  # no code at all: always unexpected


async def chaos(
    redis: Any, database: str, tally: Tally, deadline: float, rng: random.Random
) -> None:
    """Alternately kill the database's connections and restart Redis, at
    random moments, until ``deadline``."""
    kinds = ["database", "redis"]
    rng.shuffle(kinds)
    turn = 0
    while True:
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        if time.monotonic() >= deadline:
            return
        kind = kinds[turn % 2]
        turn += 1
        if kind == "database":
            conn = await admin_connect()
            try:
                killed = await conn.fetchval(
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = $1 AND pid <> pg_backend_pid()) AS t",
                    database,
                )
            finally:
                await conn.close()
            tally.chaos["database connections killed"] += 1
            tally.killed_connections += int(killed)
        else:
            await asyncio.to_thread(redis.stop)
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            await asyncio.to_thread(redis.start)
            tally.chaos["Redis restarts"] += 1


async def define_store(urls: list[str], app: App) -> None:
    async with httpx.AsyncClient(base_url=urls[0], timeout=TIMEOUT_S) as client:
        for method, params in (
            ("data.createObjectType", {"name": "kv"}),
            ("data.defineObjectProperty", {"obj_type": "kv", "prop_name": "s", "prop_type": "2"}),
            ("data.defineObjectProperty", {"obj_type": "kv", "prop_name": "n", "prop_type": "1"}),
            ("data.createObjectType", {"name": "note"}),
            (
                "data.defineObjectProperty",
                {"obj_type": "note", "prop_name": "body", "prop_type": "2"},
            ),
        ):
            response = await client.post(f"/rest/2.0/{method}", data=signed(app, method, params))
            if response.json() != {"result": True}:
                raise RuntimeError(f"{method}: {response.text}")


async def read_back(urls: list[str], app: App, feed: list[str]) -> list[Any]:
    """The results of ``feed`` (≤ 20 reads) as one batch; retried while the
    platform recovers from the last chaos."""
    async with httpx.AsyncClient(base_url=random.choice(urls), timeout=TIMEOUT_S) as client:
        for _ in range(60):
            params = {"method_feed": json.dumps(feed)}
            try:
                response = await client.post(
                    "/rest/2.0/batch.run", data=signed(app, "batch.run", params)
                )
            except httpx.TransportError:
                await asyncio.sleep(0.5)
                continue
            if response.headers.get("X-Error-Code") == "0":
                items = response.json()
                if all(item["error_code"] == 0 for item in items):
                    return [item["result"] for item in items]
            await asyncio.sleep(0.5)
    raise RuntimeError(f"could not read back {feed[:1]}… after retries")


async def verify(urls: list[str], app: App, tally: Tally) -> dict[str, int]:
    reads: list[tuple[str, Any, str]] = []  # (what, expected, query)
    for key, value in tally.hashes.items():
        query = urlencode(
            {"method": "data.getHashValue", "obj_type": "kv", "prop_name": "s", "key": key}
        )
        reads.append(("hash", {"value": value}, query))
    for obj_id, body in tally.objects.items():
        query = urlencode({"method": "data.getObject", "obj_id": obj_id, "prop_names": "body"})
        reads.append(("object", {"obj_id": obj_id, "body": body}, query))
    counters = sorted(set(tally.increments) | set(tally.unsure_increments))
    for key in counters:
        query = urlencode(
            {"method": "data.getHashValue", "obj_type": "kv", "prop_name": "n", "key": key}
        )
        reads.append(("counter", key, query))
    chunks = [reads[start : start + 20] for start in range(0, len(reads), 20)]
    gate = asyncio.Semaphore(8)

    async def read(chunk: list[tuple[str, Any, str]]) -> list[Any]:
        async with gate:
            return await read_back(urls, app, [query for _, _, query in chunk])

    lost = 0
    counter_errors = 0
    for chunk, results in zip(
        chunks, await asyncio.gather(*(read(chunk) for chunk in chunks)), strict=True
    ):
        for (what, expected, _), result in zip(chunk, results, strict=True):
            if what == "counter":
                total = int(result["value"] or 0)
                acked = tally.increments[expected]
                unsure = tally.unsure_increments[expected]
                if total < acked:
                    lost += acked - total
                    counter_errors += 1
                elif total > acked + unsure:
                    counter_errors += 1
            elif result != expected:
                lost += 1
    return {"lost": lost, "counter_errors": counter_errors, "counters": len(counters)}


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def soak(seconds: float, clients: int, seed_value: int | None) -> dict[str, Any]:
    rng = random.Random(seed_value)
    began = time.monotonic()
    name, database_url = create_database("openplatform_soak")
    try:
        with tempfile.TemporaryDirectory(prefix="op-soak-") as workdir, throwaway_redis() as redis:
            secret_key = secrets.token_urlsafe(32)
            users = [f"soak{i}" for i in range(4)]
            seeded = await seed(
                database_url,
                secret_key,
                {
                    "soak": {
                        "redirect_uris": [REDIRECT_URI],
                        "scopes": ["basic", "data"],
                        "rate_limits": [
                            {"methods": "*", "per": "app", "limit": 1_000_000_000, "window_s": 60}
                        ],
                    }
                },
                [(user, PASSWORD) for user in users],
            )
            app = seeded.apps["soak"]
            env = server_env(database_url, redis.url, Path(workdir), secret_key)
            with serving(env, Path(workdir)) as urls:
                await define_store(urls, app)
                tally = Tally()
                started = time.monotonic()
                deadline = started + seconds
                load = Load(urls, app, users, tally, deadline)
                await asyncio.gather(
                    chaos(redis, name, tally, deadline - 2.0, rng),
                    *(load.client(i) for i in range(clients)),
                )
                elapsed = time.monotonic() - started
                if not redis.running:
                    redis.start()
                verifying = time.monotonic()
                checked = await verify(urls, app, tally)
                verified = time.monotonic()
    finally:
        drop_database(name)
    acknowledged = len(tally.hashes) + len(tally.objects) + sum(tally.increments.values())
    return {
        "seconds": round(elapsed, 1),
        "setup_s": round(started - began, 1),
        "verify_s": round(verified - verifying, 1),
        "server_processes": 2,
        "clients": clients,
        "requests": tally.requests,
        "answered": tally.requests - tally.no_answer,
        "no_answer": tally.no_answer,
        "no_answer_errors": dict(tally.no_answer_kinds),
        "codes": dict(sorted(tally.codes.items())),
        "batch_item_codes": dict(sorted(tally.item_codes.items())),
        "requests_by_kind": dict(sorted(tally.by_kind.items())),
        "chaos": dict(tally.chaos),
        "killed_connections": tally.killed_connections,
        "acknowledged_writes": acknowledged,
        "acknowledged": {
            "setHashValue (incl. batch items)": len(tally.hashes),
            "batch items": tally.batch_items,
            "createObject": len(tally.objects),
            "incHashValue": sum(tally.increments.values()),
            "incHashValue unanswered or failed": sum(tally.unsure_increments.values()),
        },
        "lost_writes": checked["lost"],
        "counter_errors": checked["counter_errors"],
        "unexpected": len(tally.unexpected),
        "unexpected_samples": tally.unexpected[:10],
        "seconds_with_errors": len(tally.error_moments) / 10,
        "p50_ms": round(percentile(tally.latencies_ms, 0.50), 1),
        "p99_ms": round(percentile(tally.latencies_ms, 0.99), 1),
    }


def table(report: dict[str, Any]) -> str:
    rows: list[tuple[str, object]] = [
        ("duration (s)", report["seconds"]),
        ("server processes / clients", f"{report['server_processes']} / {report['clients']}"),
        ("chaos", ", ".join(f"{v} {k}" for k, v in report["chaos"].items()) or "none"),
        ("  connections killed", report["killed_connections"]),
        ("  time with error answers (s)", report["seconds_with_errors"]),
        ("requests", report["requests"]),
    ]
    rows += [(f"  {kind}", count) for kind, count in report["requests_by_kind"].items()]
    rows.append(("answers by code", ""))
    rows += [(f"  {code}", count) for code, count in report["codes"].items()]
    rows.append(("batch items by code", ""))
    rows += [(f"  {code}", count) for code, count in report["batch_item_codes"].items()]
    rows.append(("no answer (must be 0)", report["no_answer"]))
    rows += [(f"  {kind}", count) for kind, count in report["no_answer_errors"].items()]
    rows.append(("acknowledged writes", report["acknowledged_writes"]))
    rows += [(f"  {kind}", count) for kind, count in report["acknowledged"].items()]
    rows += [
        ("lost writes (must be 0)", report["lost_writes"]),
        ("counters out of bounds (must be 0)", report["counter_errors"]),
        ("unexpected answers (must be 0)", report["unexpected"]),
        ("latency p50 / p99 (ms)", f"{report['p50_ms']} / {report['p99_ms']}"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" for label, value in rows]
    lines += [f"unexpected: {sample}" for sample in report["unexpected_samples"]]
    return "\n".join(lines)


def passed(report: dict[str, Any]) -> bool:
    return all(
        report[name] == 0 for name in ("lost_writes", "counter_errors", "unexpected", "no_answer")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="how long (default 2)")
    parser.add_argument("--seconds", type=float, help="how long, in seconds (overrides --minutes)")
    parser.add_argument("--clients", type=int, default=12, help="concurrent clients (default 12)")
    parser.add_argument("--seed", type=int, help="seed of the chaos timing")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    report = asyncio.run(soak(seconds, args.clients, args.seed))
    print(json.dumps(report) if args.json else table(report))
    return 0 if passed(report) else 1


if __name__ == "__main__":
    sys.exit(main())
