"""SQLite reads that are one SELECT, on one connection shared by all of them.

A pooled SQLAlchemy connection costs a check-out, an execution context, a
result object and a check-in around each statement, and every pooled
connection has its own aiosqlite thread, so many reads in flight mean many
threads taking turns at the GIL. A statement built once (module level, with
``bindparam`` placeholders) is compiled once here by SQLAlchemy's SQLite
dialect; each read then sends its SQL and parameters to ONE aiosqlite
connection in one trip (``execute_fetchall``), reads queued behind each
other on its thread, and converts the rows with the same type processors
SQLAlchemy would use.

Consistency is SQLite's for a single statement: it runs in its own read
transaction (WAL snapshot) that ends before the trip returns, so every read
sees everything committed before it began — by this process or any other —
and no snapshot is held between reads. The connection is ``query_only``: it
cannot write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite
from sqlalchemy import Select
from sqlalchemy.engine import Dialect

__all__ = ["SharedReader"]

_Processor = Callable[[Any], Any] | None
_AnySelect = Select[*tuple[Any, ...]]
_MAX_STATEMENTS = 256


@dataclass(slots=True)
class _Compiled:
    """One statement as SQLite runs it: SQL text, where each parameter goes, and
    how values are converted on the way in and out."""

    sql: str
    positions: tuple[str, ...]
    expanding: frozenset[str]
    bind_processors: dict[str, _Processor]
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, processor)
    row: Callable[..., tuple[Any, ...]]
    defaults: dict[str, Any]
    expanded_sql: dict[tuple[int, ...], str] = field(default_factory=dict)

    @classmethod
    def of(cls, statement: _AnySelect, dialect: Dialect) -> _Compiled:
        compiled = statement.compile(dialect=dialect)
        binds = compiled.binds
        positions = tuple(compiled.positiontup or ())
        keys = [column.key or f"c{i}" for i, column in enumerate(statement.selected_columns)]
        return cls(
            sql=compiled.string,
            positions=positions,
            expanding=frozenset(name for name in positions if binds[name].expanding),
            bind_processors={
                name: binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in positions
            },
            result_processors=tuple(
                (index, process)
                for index, column in enumerate(statement.selected_columns)
                if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
                is not None
            ),
            row=namedtuple("Row", keys, rename=True),
            defaults={
                name: binds[name].value for name in positions if binds[name].value is not None
            },
        )

    def bind(self, parameters: Mapping[str, object]) -> tuple[str, list[Any]] | None:
        """The SQL text and positional values; None when an IN list is empty
        (SQLAlchemy renders that specially)."""
        values: list[Any] = []
        lengths: list[int] = []
        for name in self.positions:
            value = parameters[name] if name in parameters else self.defaults[name]
            process = self.bind_processors[name]
            if name in self.expanding:
                items = list(value) if isinstance(value, Iterable) else [value]
                if not items:
                    return None
                lengths.append(len(items))
                values.extend(items if process is None else [process(item) for item in items])
            else:
                values.append(value if process is None else process(value))
        if not lengths:
            return self.sql, values
        key = tuple(lengths)
        sql = self.expanded_sql.get(key)
        if sql is None:
            sql = self.sql
            for name, length in zip(
                (n for n in self.positions if n in self.expanding), lengths, strict=True
            ):
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * length), 1)
            if len(self.expanded_sql) < _MAX_STATEMENTS:
                self.expanded_sql[key] = sql
        return sql, values

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        processors = self.result_processors
        make = self.row
        rows = []
        for raw_row in raw:
            values = list(raw_row)
            for index, process in processors:
                values[index] = process(values[index])
            rows.append(make(*values))
        return rows


class SharedReader:
    """One read-only aiosqlite connection to the database file at ``path``,
    opened on first use, for statements given with their parameters."""

    def __init__(self, path: str, dialect: Dialect, busy_timeout_ms: int) -> None:
        self._path = path
        self._dialect = dialect
        self._busy_timeout_ms = busy_timeout_ms
        self._compiled: dict[int, tuple[_AnySelect, _Compiled]] = {}
        self._connection: aiosqlite.Connection | None = None
        self._opening: asyncio.Future[aiosqlite.Connection] | None = None

    def prepared(self, statement: _AnySelect) -> _Compiled | None:
        """The compiled form of a statement built once; None for a statement
        seen for the first time once the cache is full (the caller then uses
        SQLAlchemy's own path)."""
        entry = self._compiled.get(id(statement))
        if entry is not None and entry[0] is statement:
            return entry[1]
        if len(self._compiled) >= _MAX_STATEMENTS:
            return None
        compiled = _Compiled.of(statement, self._dialect)
        self._compiled[id(statement)] = (statement, compiled)
        return compiled

    async def fetch(
        self, compiled: _Compiled, parameters: Mapping[str, object]
    ) -> list[tuple[Any, ...]] | None:
        """Every row of the statement; None when it cannot run here (an empty
        IN list)."""
        bound = compiled.bind(parameters)
        if bound is None:
            return None
        connection = await self._connect()
        try:
            raw = await connection.execute_fetchall(*bound)
        except sqlite3.OperationalError:
            # A broken connection is replaced on the next read.
            await self.close()
            raise
        except ValueError as exc:  # aiosqlite: closed under this read
            await self.close()
            raise sqlite3.OperationalError(str(exc)) from exc
        return compiled.rows(raw)

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is not None:
            return self._connection
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            self._connection = await asyncio.shield(opening)
        except BaseException:
            if self._opening is opening and opening.done():
                self._opening = None
            raise
        return self._connection

    async def _open(self) -> aiosqlite.Connection:
        connection = aiosqlite.connect(self._path, isolation_level=None)
        # As SQLAlchemy does for its aiosqlite connections: never keeps a process alive.
        connection._thread.daemon = True
        await connection
        try:
            await connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            await connection.execute("PRAGMA query_only=ON")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def close(self) -> None:
        connection, opening = self._connection, self._opening
        self._connection = self._opening = None
        if connection is None and opening is not None:
            try:
                connection = await opening
            except Exception:
                return  # it never opened
        if connection is not None:
            await connection.close()
