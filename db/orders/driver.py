"""The order path's database driver: statements sent straight to libpq, several in one round trip.

The one module that uses psycopg's internals (`psycopg.pq`, `psycopg.adapt.Transformer`), pinned in
pyproject.toml to the minor version it was written against; tests/test_order_driver.py fails when
they change. Why it exists and what it saves: docs/performance.md ("The order driver").

Statements are prepared once per connection (named `sneaker_orders_<n>`); every pipeline first asks
for generic plans for its own transaction (GENERIC_PLANS). Parameters travel as text of unknown
type: each must get its type from its context in the SQL (a column, or a CAST).
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


def _quoted(value: str) -> bytes:
    """A string as an element of PostgreSQL's array input: double-quoted, with backslash and quote escaped."""
    return b'"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').encode()


# The text form of an array's element, by its exact type: integers, strings and None (NULL).
_ELEMENT_FORMS = {int: b"%d".__mod__, str: _quoted, type(None): lambda _: b"NULL"}


def _array(values: list) -> bytes:
    return b"{%s}" % b",".join([_ELEMENT_FORMS[type(item)](item) for item in values])


# The text form of each type of parameter, by the value's exact type (cheaper than a chain of isinstance).
# A list is a one-dimensional array of the element types above.
_TEXT_FORMS = {
    int: b"%d".__mod__,
    str: str.encode,
    bool: lambda value: b"t" if value else b"f",
    datetime: _timestamp,
    list: _array,
    UUID: lambda value: str(value).encode(),
    dict: lambda value: json.dumps(value).encode(),
}


def text_form(value: Any) -> bytes | None:
    """`value` as PostgreSQL's text input for it (None: NULL); TypeError for a type (or array element) without one."""
    if value is None:
        return None
    try:
        return _TEXT_FORMS[type(value)](value)
    except KeyError as error:
        raise _no_text_form(error.args[0]) from None


def _no_text_form(kind: type) -> TypeError:
    return TypeError(f"the order driver sends no parameters (or array elements) of type {kind.__name__}")


_TUPLES_OK, _COMMAND_OK, _FATAL_ERROR, _PIPELINE_SYNC = (
    pq.ExecStatus.TUPLES_OK,
    pq.ExecStatus.COMMAND_OK,
    pq.ExecStatus.FATAL_ERROR,
    pq.ExecStatus.PIPELINE_SYNC,
)


class DriverConnection:
    """A pooled connection used through libpq: statements outside a pipeline are each their own transaction.

    Code of the order path names it `driver`; `connection` is SQLAlchemy's (an AsyncConnection).
    """

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
                try:
                    values = [
                        None if (value := parameters[key]) is None else _TEXT_FORMS[type(value)](value) for key in names
                    ]
                except KeyError as error:
                    if isinstance(error.args[0], type):
                        raise _no_text_form(error.args[0]) from None
                    raise
                pgconn.send_query_prepared(name, values)
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


class OrderConnections:
    """The order path's connections: borrowed from the engine's pool, kept between orders, given back once idle.

    Keeping one saves the pool's check-out and return (greenlet switches, pool events, a rollback) on
    every order. They stay the engine pool's connections, counted in its size; how many are out at
    once is bounded by whoever hands them out (api/write_slots.py, one per write slot). The most
    recently used is taken first, so that one idle for `idle_seconds` goes back to the pool.
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

    def __init__(self, kept: OrderConnections) -> None:
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


def driver_connection(source: "AsyncEngine | OrderConnections"):
    """A connection of the pool for statements sent straight to libpq (`async with`): a kept one, or the engine's."""
    return source.connection() if isinstance(source, OrderConnections) else _engine_connection(source)


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
