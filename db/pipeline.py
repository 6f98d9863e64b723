"""Several statements in one round trip and one transaction (psycopg's pipeline mode)."""

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

Statement = tuple[str, Mapping[str, Any]]


async def run_pipelined(connection: AsyncConnection, statements: Sequence[Statement]) -> list[list[tuple]]:
    """Send `statements` at once and return the rows of each; they commit together at the end or not at all.

    `connection` must be in autocommit mode: the statements between the pipeline's start and its one
    Sync message then form one implicit transaction, and a statement that fails rolls back the ones
    before it and skips the ones after. Each statement still takes its own snapshot (READ COMMITTED):
    a lock taken by one is in force, and its waits over, when the next one starts reading.
    """
    raw = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection = raw.driver_connection
    if not driver.autocommit:
        raise RuntimeError("run_pipelined needs an autocommit connection")
    cursors = []
    try:
        async with driver.pipeline():
            for sql, parameters in statements:
                cursor = driver.cursor()
                await cursor.execute(sql, parameters)
                cursors.append(cursor)
        return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]
    except psycopg.Error as error:
        # After an aborted pipeline psycopg's record of prepared statements can be wrong: a statement
        # it prepares on its fifth run is marked prepared even when the pipeline was aborted before
        # its Parse ran ("prepared statement _pg3_N does not exist" on the next run). The connection
        # is dropped instead of reused. Pipelines fail only on timeouts and faults, never on a refused order.
        await connection.invalidate()
        # The same exceptions as statements run through SQLAlchemy, so callers and the API handle one kind.
        raise DBAPIError.instance(None, None, error, psycopg.Error) from error
