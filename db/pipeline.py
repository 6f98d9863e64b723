"""Statements sent straight to libpq on a connection of the engine's pool, several in one round trip.

The order path runs about a thousand orders a second per process, and on this kind of machine
every system call and every layer counts. Measured per order, in-process, 16 orders at once:
SQLAlchemy's Connection cost about 110 µs to check out in autocommit (the path borrows the pooled
DBAPI connection instead, about 40 µs: the same pool, size, timeouts and connection settings), and
psycopg's own pipeline about 160 µs for three statements (a generator, a lock, a zero-timeout
poll and an event-loop registration per statement), against 27 µs for the same messages written
here on psycopg's libpq wrapper: the statements are queued, flushed once, and the results read
when the socket is readable.

Every pipeline starts by asking for generic plans, for its own transaction: the statements are
prepared once, and the values of their parameters (a customer, a few products) never change the
best plan. Left to its default, PostgreSQL planned the placement's write again at every execution
(about 2.2 ms of its CPU per order, twice the execution, measured with EXPLAIN ANALYZE): it
estimates the unnest of an array parameter at ten rows, which makes the generic plan look dearer.

Statements are PostgreSQL-prepared once per connection (named `sneaker_orders_<n>`, n unique in the process); parameters
travel as text of unknown type, so every parameter must have its type from its context in the SQL
(a column it is compared with or assigned to, or a CAST).
"""

import asyncio
import itertools
import json
import re
import time
import weakref
from collections.abc import AsyncIterator, Container, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors, pq
from psycopg.adapt import Transformer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

Statement = tuple[str, Mapping[str, Any]]

# The first statement of every pipeline (see above), unless its own first statement does this.
GENERIC_PLANS_SETTING = "set_config('plan_cache_mode', 'force_generic_plan', true)"
GENERIC_PLANS = f"SELECT {GENERIC_PLANS_SETTING}"

_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")
# Statements prepared on each connection: SQL text -> statement name.
_STATEMENT_NUMBERS = itertools.count(1)
_PREPARED: "weakref.WeakKeyDictionary[psycopg.AsyncConnection, dict[bytes, bytes]]" = weakref.WeakKeyDictionary()


@lru_cache(maxsize=256)
def native_form(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """`sql` with psycopg's %(name)s parameters as PostgreSQL's own $n, and the names in $n order."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _NAMED_PARAMETER.sub(number, sql).encode(), tuple(names)


def _timestamp(value: datetime) -> bytes:
    if value.tzinfo is None:
        raise ValueError("timestamps are sent with their time zone")
    return value.isoformat().encode()


# The text form of each type of parameter, found by the value's exact type (cheaper than a chain of isinstance).
_TEXT_FORMS = {
    int: b"%d".__mod__,
    str: str.encode,
    bool: lambda value: b"t" if value else b"f",
    datetime: _timestamp,
    list: lambda values: b"{%s}" % b",".join(b"NULL" if item is None else b"%d" % item for item in values),
    UUID: lambda value: str(value).encode(),
    dict: lambda value: json.dumps(value).encode(),
}


_TUPLES_OK, _COMMAND_OK, _FATAL_ERROR, _PIPELINE_SYNC = (
    pq.ExecStatus.TUPLES_OK,
    pq.ExecStatus.COMMAND_OK,
    pq.ExecStatus.FATAL_ERROR,
    pq.ExecStatus.PIPELINE_SYNC,
)


class DriverConnection:
    """A connection of the pool used through libpq: statements outside a pipeline are each their own transaction."""

    def __init__(self, pooled) -> None:
        self._connection: psycopg.AsyncConnection = pooled.driver_connection
        self._prepared = _PREPARED.setdefault(self._connection, {})

    async def execute(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple]:
        """Run one statement (one transaction) and return its rows."""
        [rows] = await self.run_pipelined([(sql, parameters or {})])
        return rows

    async def run_pipelined(
        self, statements: Sequence[Statement], *, rows_of: Container[int] | None = None, generic_plans: bool = True
    ) -> list[list[tuple]]:
        """`send_pipelined`, raising what SQLAlchemy would (DBAPIError and its kinds) so callers handle one kind."""
        try:
            return await self.send_pipelined(statements, rows_of=rows_of, generic_plans=generic_plans)
        except psycopg.Error as error:
            raise DBAPIError.instance(None, None, error, psycopg.Error) from error

    async def send_pipelined(
        self, statements: Sequence[Statement], *, rows_of: Container[int] | None = None, generic_plans: bool = True
    ) -> list[list[tuple]]:
        """Send `statements` at once and return the rows of each; they commit together at the end or not at all.

        The statements before the pipeline's one Sync message form one implicit transaction: a
        statement that fails rolls back the ones before it and skips the ones after. Each statement
        still takes its own snapshot (READ COMMITTED): a lock taken by one is in force, and its
        waits over, when the next one starts reading. With `rows_of`, only the statements of those
        indexes have their rows read (the others' are []). `generic_plans=False`: the first statement
        asks for generic plans itself (see GENERIC_PLANS), saving a statement.
        """
        first = 1 if generic_plans else 0
        statements = [(GENERIC_PLANS, {}), *statements] if generic_plans else list(statements)
        wanted = range(first, len(statements)) if rows_of is None else {index + first for index in rows_of}
        try:
            return (await self._run(statements, wanted))[first:]
        except errors.InvalidSqlStatementName:
            # psycopg sends DEALLOCATE ALL when it sees a ROLLBACK (or DISCARD ALL...) on the connection,
            # which drops these statements too. Nothing was written (the pipeline is one transaction):
            # prepare them again and run it once more.
            self._prepared.clear()
            return (await self._run(statements, wanted))[first:]

    async def _run(self, statements: Sequence[Statement], wanted: Container[int]) -> list[list[tuple]]:
        pgconn = self._connection.pgconn
        # What each result the server sends back answers: (statement index, (text, name) it prepares or None).
        expected: list[tuple[int, tuple[bytes, bytes] | None]] = []
        pgconn.enter_pipeline_mode()
        try:
            for index, (sql, parameters) in enumerate(statements):
                text, names = native_form(sql)
                name = self._prepared.get(text)
                if name is None:
                    name = b"sneaker_orders_%d" % next(_STATEMENT_NUMBERS)
                    pgconn.send_prepare(name, text)
                    expected.append((index, (text, name)))
                values = [parameters[key] for key in names]
                # Each parameter as PostgreSQL's text input for it (None: NULL); a KeyError names a type without one.
                pgconn.send_query_prepared(
                    name, [None if value is None else _TEXT_FORMS[type(value)](value) for value in values]
                )
                expected.append((index, None))
            pgconn.pipeline_sync()
            while pgconn.flush():
                await _socket_ready(pgconn.socket, readable=False)
            results = await _all_results(pgconn)
        finally:
            if pgconn.pipeline_status != pq.PipelineStatus.OFF:
                try:
                    pgconn.exit_pipeline_mode()
                except psycopg.Error:
                    pass  # results left unread: the connection is dropped when given back
        return self._rows(results, expected, len(statements), wanted)

    def _rows(self, results: list, expected, count: int, wanted: Container[int]) -> list[list[tuple]]:
        """The rows of each statement from the results of the pipeline (one and a None per command, then a Sync)."""
        if len(results) != 2 * len(expected) + 1 or any(results[1:-1:2]):
            raise errors.InternalError("the pipeline's results do not match its commands")
        rows: list[list[tuple]] = [[] for _ in range(count)]
        failure: psycopg.Error | None = None
        transformer = None
        for (index, prepares), result in zip(expected, results[::2], strict=False):
            status = result.status
            if status == _TUPLES_OK:
                if index in wanted:
                    transformer = transformer or Transformer(self._connection)
                    transformer.set_pgresult(result)
                    rows[index] = transformer.load_rows(0, result.ntuples, tuple)
            elif status == _FATAL_ERROR:
                failure = failure or errors.error_from_result(result, encoding=self._connection.info.encoding)
            elif status == _COMMAND_OK and prepares is not None:
                # A prepared statement outlives a transaction that fails after it: it is known from now on.
                # (One whose Parse was skipped, after an error earlier in the pipeline, is not.)
                text, name = prepares
                self._prepared[text] = name
        if failure is not None:
            raise failure
        return rows


async def _all_results(pgconn: pq.PGconn) -> list:
    """Every result up to and including the pipeline's Sync, reading the socket only when libpq has none ready."""
    results = []
    while True:
        while not pgconn.is_busy():
            result = pgconn.get_result()
            results.append(result)
            if result is not None and result.status == _PIPELINE_SYNC:
                return results
        await _socket_ready(pgconn.socket, readable=True)
        pgconn.consume_input()


async def _socket_ready(socket: int, *, readable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if readable:
        loop.add_reader(socket, wake)
        try:
            await ready
        finally:
            loop.remove_reader(socket)
    else:
        loop.add_writer(socket, wake)
        try:
            await ready
        finally:
            loop.remove_writer(socket)


class KeptConnections:
    """Connections of the engine's pool that the order path keeps between its orders, given back once idle.

    Checking a connection out of SQLAlchemy's pool and back costs about 40 µs of CPU (two greenlet
    switches, the pool's events, a rollback on return; measured), a tenth of an order. The order
    path takes one from here instead: the most recently used first, so that a connection idle for
    `idle_seconds` goes back to the pool. They stay the pool's connections, counted in its size:
    at most as many are kept as order writes ran at once (the write slots leave two to the rest).
    """

    def __init__(self, engine: AsyncEngine, *, idle_seconds: float = 1.0) -> None:
        self.engine, self.idle_seconds = engine, idle_seconds
        self._idle: list[tuple[Any, float]] = []
        self._sweep: asyncio.TimerHandle | None = None
        self._giving_back: set[asyncio.Task] = set()

    def connection(self) -> "_KeptConnection":
        """A connection for statements sent straight to libpq (`async with`), kept afterwards if it is as it was."""
        return _KeptConnection(self)

    def _keep(self, pooled) -> None:
        self._idle.append((pooled, time.monotonic()))
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.idle_seconds, self._give_back_idle)

    def _give_back_idle(self) -> None:
        self._sweep = None
        since = time.monotonic() - self.idle_seconds
        idle = [entry for entry in self._idle if entry[1] < since]
        self._idle = [entry for entry in self._idle if entry[1] >= since]
        for pooled, _ in idle:
            task = asyncio.get_running_loop().create_task(_give_back(pooled))
            self._giving_back.add(task)
            task.add_done_callback(self._giving_back.discard)
        if self._idle:
            self._sweep = asyncio.get_running_loop().call_later(self.idle_seconds, self._give_back_idle)

    async def close(self) -> None:
        """Give every kept connection back to the pool."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for pooled, _ in idle:
            await _give_back(pooled)
        if self._giving_back:
            await asyncio.gather(*self._giving_back)


class _KeptConnection:
    """One use of a kept connection (a class, not a generator: this runs once per order)."""

    def __init__(self, kept: KeptConnections) -> None:
        self._kept, self._pooled = kept, None

    async def __aenter__(self) -> DriverConnection:
        idle = self._kept._idle
        self._pooled = idle.pop()[0] if idle else await self._kept.engine.raw_connection()
        return DriverConnection(self._pooled)

    async def __aexit__(self, *exception) -> None:
        if _clean(self._pooled):
            self._kept._keep(self._pooled)
        else:
            await _give_back(self._pooled)


def driver_connection(source: "AsyncEngine | KeptConnections"):
    """A connection of the pool for statements sent straight to libpq (`async with`): a kept one, or the engine's."""
    return source.connection() if isinstance(source, KeptConnections) else _engine_connection(source)


@asynccontextmanager
async def _engine_connection(engine: AsyncEngine) -> AsyncIterator[DriverConnection]:
    # The same exceptions as SQLAlchemy raises (an unreachable database is an OperationalError).
    pooled = await engine.raw_connection()
    try:
        yield DriverConnection(pooled)
    finally:
        await _give_back(pooled)


def _clean(pooled) -> bool:
    """True when the connection is as the pool gave it: valid, idle, out of pipeline mode."""
    if not pooled.is_valid:
        return False
    pgconn = pooled.driver_connection.pgconn
    return (
        pgconn.status == pq.ConnStatus.OK
        and pgconn.pipeline_status == pq.PipelineStatus.OFF
        and pgconn.transaction_status == pq.TransactionStatus.IDLE
    )


async def _give_back(pooled) -> None:
    """Return the connection to the pool, or drop it when a failure left it in a state of its own."""
    if pooled.is_valid and not _clean(pooled):
        await greenlet_spawn(pooled.invalidate)
    await greenlet_spawn(pooled.close)
