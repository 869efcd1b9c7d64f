"""ASGI apps that ``asgi_servers.py`` serves with each server under test.

Each is a zero-argument factory so both servers can build it in the worker
(``granian --factory`` / ``uvicorn --factory``): ``asgi_targets:hello_app``.
The SQLite app reads its database path from ``OPENPLATFORM_BENCH_SQLITE``;
``create_items_database`` (run by the bench beforehand) fills it.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    select,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from openplatform.storage.engine import Sessions
from openplatform.storage.engine import create_engine as create_storage_engine

__all__ = [
    "ITEM_COUNT",
    "SQLITE_PATH_ENV",
    "create_items_database",
    "hello_app",
    "item_key",
    "raw_hello_app",
    "sqlite_app",
]

SQLITE_PATH_ENV = "OPENPLATFORM_BENCH_SQLITE"
ITEM_COUNT = 1000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(32), nullable=False, unique=True),
    Column("name", String(64), nullable=False),
    Column("quota", Integer, nullable=False),
)


def item_key(number: int) -> str:
    """The lookup key of row ``number`` (shaped like an app key)."""
    return f"app{number:06d}"


def create_items_database(path: str) -> None:
    """Create ``items`` (unique index on ``key``) with ``ITEM_COUNT`` rows, in WAL mode."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        metadata.drop_all(connection)
        metadata.create_all(connection)
        connection.execute(
            items.insert(),
            [
                {"id": n, "key": item_key(n), "name": f"app number {n}", "quota": 1000 + n}
                for n in range(1, ITEM_COUNT + 1)
            ],
        )
    engine.dispose()


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def hello_app() -> Starlette:
    """A Starlette ``Route`` returning a small JSON body."""
    return Starlette(routes=[Route("/hello", hello)])


def sqlite_app() -> Starlette:
    """A Starlette route running one indexed SELECT (random key) per request,
    through the server's own engine and read session (``openplatform.storage``:
    aiosqlite, WAL, its pool size, one ``BEGIN`` … ``COMMIT`` per request)."""
    engine = create_storage_engine(f"sqlite+aiosqlite:///{os.environ[SQLITE_PATH_ENV]}")
    sessions = Sessions(engine)
    query = select(items.c.key, items.c.name, items.c.quota).where(items.c.key == bindparam("key"))

    async def item(request: Request) -> JSONResponse:
        key = item_key(random.randint(1, ITEM_COUNT))
        async with sessions.read() as session:
            row = (await session.execute(query, {"key": key})).one()
        return JSONResponse({"key": row.key, "name": row.name, "quota": row.quota})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    return Starlette(routes=[Route("/item", item)], lifespan=lifespan)


_RAW_BODY = b'{"hello":"world"}'
_RAW_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_RAW_BODY)).encode()),
    ],
}
_RAW_BODY_MESSAGE: Message = {"type": "http.response.body", "body": _RAW_BODY}


async def _raw_hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(_RAW_START)
    await send(_RAW_BODY_MESSAGE)


def raw_hello_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The floor: a bare ASGI callable, no framework, same body as ``hello_app``."""
    return _raw_hello
