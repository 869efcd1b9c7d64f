"""The async engine and the two kinds of session the repositories use.

SQLite (aiosqlite) runs in WAL mode with foreign keys on and a busy timeout.
SQLAlchemy, not the sqlite3 module, emits ``BEGIN`` so that every transaction
is a real one; write transactions start with ``BEGIN IMMEDIATE``, taking the
write lock up front, so a read-modify-write never fails half-way with
"database is locked" when another writer got there first (readers are not
blocked: WAL). PostgreSQL (asyncpg) uses READ COMMITTED; a read-modify-write
locks its row (``SELECT … FOR UPDATE``) or is a single conditional statement.
A lock wait on PostgreSQL gives up after :data:`PG_LOCK_TIMEOUT_MS` (as SQLite's
busy timeout does): a stuck lock is an outage to report, not a hang.

Reads that are one SELECT skip all of that (:meth:`Sessions.first`): one
statement, no transaction around it — on a SQLite file through one shared
read-only connection (:mod:`openplatform.storage.sqlite_reads`). Every other
SQLite statement is one trip to aiosqlite's thread
(:mod:`openplatform.storage.sqlite_driver`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVarTuple, cast

from sqlalchemy import Executable, Row, Select, Table, event, insert
from sqlalchemy.engine import AdaptedConnection, Connection, Engine, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import greenlet_spawn

from openplatform.config import database_url_for_driver
from openplatform.storage.errors import DatabaseUnavailable
from openplatform.storage.sqlite_driver import OneTripDBAPI
from openplatform.storage.sqlite_reads import SharedReader

__all__ = [
    "PG_LOCK_TIMEOUT_MS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "Sessions",
    "create_engine",
    "is_outage",
    "sqlite_busy_timeout_ms",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
PG_LOCK_TIMEOUT_MS = 5_000
_WRITE = "openplatform_write"
_SINGLE_STATEMENT = "openplatform_single_statement"
_Ts = TypeVarTuple("_Ts")
_Parameters = Mapping[str, object] | None


def create_engine(url: str, *, echo: bool = False, timeout_s: float | None = None) -> AsyncEngine:
    """An async engine for ``sqlite://`` / ``postgresql://`` (or their
    ``+aiosqlite`` / ``+asyncpg`` forms), configured as described above.

    ``timeout_s`` (``OPENPLATFORM_DB_TIMEOUT_S`` for the server) bounds every
    wait on the database, so a stalled one answers "unavailable" instead of
    holding the request: a pooled connection, connecting, each round trip
    of a statement (PostgreSQL: the prepare and the execute are each one),
    and SQLite's wait for a lock. None (migrations, which may legitimately
    run long) leaves statements unbounded."""
    url = database_url_for_driver(url)
    pool_timeout = timeout_s if timeout_s is not None else 30.0
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            echo=echo,
            pool_size=8,
            max_overflow=8,
            pool_timeout=pool_timeout,
            module=OneTripDBAPI(),
        )
        _configure_sqlite(engine, sqlite_busy_timeout_ms(timeout_s))
        return engine
    connect_args: dict[str, object] = {"server_settings": {"lock_timeout": str(PG_LOCK_TIMEOUT_MS)}}
    if timeout_s is not None:
        connect_args.update(timeout=timeout_s, command_timeout=timeout_s)
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
    )
    _configure_postgresql(engine)
    return engine


def sqlite_busy_timeout_ms(timeout_s: float | None) -> int:
    """How long SQLite waits for another writer's lock."""
    return SQLITE_BUSY_TIMEOUT_MS if timeout_s is None else max(1, round(timeout_s * 1000))


def _configure_postgresql(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: object
    ) -> None:
        # A connection the server closed (a restart, pg_terminate_backend) is
        # replaced before use. asyncpg sees the close on its own socket, so
        # this costs no round trip; SQLAlchemy's pool_pre_ping would cost
        # three (BEGIN, a ping, ROLLBACK) on every checkout.
        driver = cast(AdaptedConnection, dbapi_connection).driver_connection
        if driver.is_closed():
            raise DisconnectionError("the server closed this connection")

    @event.listens_for(engine.sync_engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        # A round trip that timed out, or was cancelled by a deadline, left
        # the connection mid-conversation with a server that may not answer:
        # close its socket now. SQLAlchemy would otherwise first try a
        # graceful close (or asyncpg a cancel request) through the same
        # stalled network, and the caller would wait for that too.
        if isinstance(context.original_exception, TimeoutError | asyncio.CancelledError):
            context.is_disconnect = True
            pooled = context.connection.connection if context.connection is not None else None
            driver = getattr(pooled, "driver_connection", None)
            if driver is not None:
                driver.terminate()


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        # Hand transaction control to SQLAlchemy (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_SINGLE_STATEMENT, False):
            return  # sqlite3 runs the statement in a transaction of its own
        immediate = options.get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# What a database that is down, unreachable or overloaded raises: the one place
# driver-level failures become :class:`DatabaseUnavailable`. Constraint
# violations (IntegrityError) and programming errors pass through unchanged.
_OUTAGES = (OperationalError, InterfaceError, PoolTimeoutError, OSError)
# PostgreSQL reports most failures as a plain DBAPIError (asyncpg's errors are
# not classified further): these SQLSTATEs say "not now", not "never".
# 40001 serialization failure, 40P01 deadlock, 55P03 lock wait timed out,
# 57014 statement cancelled, 57P01-57P03 server shutting down or starting,
# 53xxx out of resources, 08xxx connection failures, 55000 a database that
# does not accept connections (ALLOW_CONNECTIONS false).
_OUTAGE_SQLSTATES = frozenset(
    {"40001", "40P01", "55000", "55P03", "57014", "57P01", "57P02", "57P03"}
)
_OUTAGE_SQLSTATE_CLASSES = ("53", "08")
# SQLite says which error it is by name: busy or locked (past the busy
# timeout), I/O, a file it cannot open, a full disk. "SQLITE_ERROR" (no such
# table, a syntax error) is a bug, not an outage.
_SQLITE_OUTAGES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_FULL",
    "SQLITE_NOMEM",
    "SQLITE_PROTOCOL",
    "SQLITE_INTERRUPT",
    "SQLITE_READONLY",
)


def _sqlite_outage(error: BaseException | None) -> bool | None:
    """For a sqlite3 error, whether it is an outage (None: not SQLite's)."""
    name = getattr(error, "sqlite_errorname", None)
    return name.startswith(_SQLITE_OUTAGES) if isinstance(name, str) else None


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot serve right now (connection
    refused or lost, pool exhausted, lock wait timed out, serialization
    failure or deadlock, server shutting down): the same work may succeed
    later. Its transaction was not committed — unless the failure hit the
    COMMIT itself, whose outcome is then unknown."""
    sqlite = _sqlite_outage(exc.orig if isinstance(exc, DBAPIError) else exc)
    if sqlite is not None:
        return sqlite
    if isinstance(exc, _OUTAGES):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return False
    return sqlstate in _OUTAGE_SQLSTATES or sqlstate.startswith(_OUTAGE_SQLSTATE_CLASSES)


def _outage_message(exc: BaseException) -> str:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"database unavailable: {first[0] if first else type(exc).__name__}"


def _raise_outage(exc: BaseException) -> None:
    """Raise :class:`DatabaseUnavailable` from ``exc`` when it is an outage."""
    if is_outage(exc):
        raise DatabaseUnavailable(_outage_message(exc)) from exc


def _first(engine: Engine, statement: Select[*_Ts], parameters: _Parameters) -> Row[*_Ts] | None:
    with engine.connect() as conn:
        return conn.execute(statement, parameters).first()


def _write_one(engine: Engine, statement: Executable, parameters: _Parameters) -> Row[Any] | None:
    with engine.connect() as conn:
        return conn.execute(statement, parameters).first()


def _insert_many(engine: Engine, statement: Executable, rows: list[dict[str, object]]) -> None:
    with engine.begin() as conn:
        conn.execute(statement, rows)


def _all(engine: Engine, statement: Select[*_Ts], parameters: _Parameters) -> Sequence[Row[*_Ts]]:
    with engine.connect() as conn:
        return conn.execute(statement, parameters).all()


class Sessions:
    """Session factories over one engine: :meth:`read` for queries that need
    one snapshot over several statements, :meth:`write` for anything that
    changes data (one transaction, committed on exit, rolled back on an
    exception), and :meth:`first` / :meth:`all` for a read that is ONE SELECT.

    A single SELECT sees one consistent snapshot on its own (SQLite runs it in
    an implicit read transaction, PostgreSQL in its own statement snapshot), so
    :meth:`first` and :meth:`all` run it in autocommit mode (a pooled
    connection, or SQLite's shared reader): no BEGIN/COMMIT round trips, no
    ORM session, Core rows. It reads
    the latest committed data, so a token revoked by any process is seen as
    revoked by the next read.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_s: float | None = None) -> None:
        self.engine = engine
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        # On PostgreSQL one deadline covers a whole read, write or statement:
        # the driver's timeouts bound each wait (pool, connect, prepare,
        # execute) but one request may meet several. A cancelled statement's
        # connection is thrown away by SQLAlchemy, never reused. (SQLite's
        # waits are its lock waits, bounded by its busy timeout.)
        self._deadline_s = None if engine.dialect.name == "sqlite" else timeout_s
        self._read = async_sessionmaker(engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            engine.execution_options(**{_WRITE: True}), expire_on_commit=False
        )
        # The synchronous face of the engine, driven in one greenlet per read
        # (as AsyncConnection.run_sync does): one switch instead of one each
        # for connect, execute and close.
        # ... and the same for a write transaction (BEGIN IMMEDIATE on SQLite)
        self._writer = engine.sync_engine.execution_options(**{_WRITE: True})
        if engine.dialect.name == "sqlite":
            self._single = engine.sync_engine.execution_options(**{_SINGLE_STATEMENT: True})
        else:
            self._single = engine.sync_engine.execution_options(isolation_level="AUTOCOMMIT")
        self._reader: SharedReader | None = None
        path = engine.url.database
        if engine.dialect.name == "sqlite" and path and path != ":memory:" and not engine.url.query:
            self._reader = SharedReader(path, engine.dialect, sqlite_busy_timeout_ms(timeout_s))

    async def first(
        self, statement: Select[*_Ts], parameters: _Parameters = None
    ) -> Row[*_Ts] | None:
        """The first row of one SELECT, or None. Give a statement built once
        (module level) with ``bindparam`` placeholders and their values in
        ``parameters``: it is compiled once, and on a SQLite file it runs on
        the shared reader (:mod:`openplatform.storage.sqlite_reads`), whose
        rows are named tuples of the same columns (index, unpack or read them
        by attribute)."""
        rows = await self._fast(statement, parameters)
        if rows is not None:
            return rows[0] if rows else None
        try:
            async with asyncio.timeout(self._deadline_s):
                return await greenlet_spawn(_first, self._single, statement, parameters)
        except Exception as exc:
            _raise_outage(exc)
            raise

    async def all(
        self, statement: Select[*_Ts], parameters: _Parameters = None
    ) -> Sequence[Row[*_Ts]]:
        """Every row of one SELECT (see :meth:`first`)."""
        rows = await self._fast(statement, parameters)
        if rows is not None:
            return rows
        try:
            async with asyncio.timeout(self._deadline_s):
                return await greenlet_spawn(_all, self._single, statement, parameters)
        except Exception as exc:
            _raise_outage(exc)
            raise

    async def write_one(
        self, statement: Executable, parameters: _Parameters = None
    ) -> Row[Any] | None:
        """The first row a data-changing statement RETURNs (None when it
        returns none). ONE statement is atomic on its own, so it runs in
        autocommit mode: one round trip, no BEGIN/COMMIT. On SQLite it waits
        for the write lock like any write (the busy timeout)."""
        try:
            async with self._sqlite_writer(), asyncio.timeout(self._deadline_s):
                return await greenlet_spawn(_write_one, self._single, statement, parameters)
        except Exception as exc:
            _raise_outage(exc)
            raise

    def group_insert(self, table: Table) -> GroupInsert:
        """Rows for ``table`` from concurrent requests, written together (see
        :class:`GroupInsert`)."""
        return GroupInsert(self, table)

    async def _insert_rows(self, table: Table, rows: list[dict[str, object]]) -> None:
        """The rows in one transaction: one compiled INSERT, run for each row
        (executemany: one trip on SQLite's thread, one pipeline on asyncpg)."""
        try:
            async with self._sqlite_writer(), asyncio.timeout(self._deadline_s):
                await greenlet_spawn(_insert_many, self._writer, insert(table), rows)
        except Exception as exc:
            _raise_outage(exc)
            raise

    async def _fast(
        self, statement: Select[*_Ts], parameters: _Parameters
    ) -> Sequence[Row[*_Ts]] | None:
        """The rows from the shared SQLite reader; None where it does not apply."""
        if self._reader is None or parameters is None:
            return None
        compiled = self._reader.prepared(statement)
        if compiled is None:
            return None
        try:
            rows = await self._reader.fetch(compiled, parameters)
        except Exception as exc:
            _raise_outage(exc)
            raise
        # Named tuples of the statement's columns: what callers use of a Row.
        return cast("Sequence[Row[*_Ts]] | None", rows)

    async def close(self) -> None:
        """Close the shared SQLite reader (the engine's pool is the engine's)."""
        if self._reader is not None:
            await self._reader.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        try:
            async with (
                asyncio.timeout(self._deadline_s),
                self._read() as session,
                session.begin(),
            ):
                yield session
        except Exception as exc:
            _raise_outage(exc)
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        try:
            async with (
                self._sqlite_writer(),
                asyncio.timeout(self._deadline_s),
                self._write() as session,
                session.begin(),
            ):
                yield session
        except Exception as exc:
            _raise_outage(exc)
            raise

    def _sqlite_writer(self) -> contextlib.AbstractAsyncContextManager[object]:
        """SQLite has one writer at a time: this process's write transactions
        take turns here, in order, instead of in SQLite's busy handler, which
        sleeps in growing steps (up to 100 ms) and made the token endpoint's
        tail latency seconds long under load. Other processes (the CLI) still
        meet the busy timeout."""
        if not self.is_sqlite:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        return lock

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"


class GroupInsert:
    """Group commit for rows that depend on nothing (a new token): every row
    that concurrent requests add while a write is under way goes into the
    next write, ONE multi-row ``INSERT`` — one commit, one trip to the
    database for the lot instead of a transaction each. :meth:`add` returns
    once its row is committed; when the write fails, every request of that
    write gets the error."""

    MAX_ROWS = 256

    def __init__(self, sessions: Sessions, table: Table) -> None:
        self._sessions = sessions
        self._table = table
        self._queue: list[tuple[dict[str, object], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, row: dict[str, object]) -> None:
        loop = asyncio.get_running_loop()
        committed: asyncio.Future[None] = loop.create_future()
        self._queue.append((row, committed))
        writer = self._writer
        if writer is None or writer.done() or writer.get_loop() is not loop:
            self._writer = loop.create_task(self._write())
        await committed

    async def _write(self) -> None:
        while self._queue:
            batch = self._queue[: self.MAX_ROWS]
            del self._queue[: self.MAX_ROWS]
            try:
                await self._sessions._insert_rows(self._table, [row for row, _ in batch])
            except Exception as exc:
                for _, committed in batch:
                    if not committed.done():
                        committed.set_exception(exc)
                        committed.exception()  # a caller gone (cancelled) never reads it
            else:
                for _, committed in batch:
                    if not committed.done():
                        committed.set_result(None)
