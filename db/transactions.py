"""The transaction boundary of a unit of work, retried when PostgreSQL asks for it."""

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

T = TypeVar("T")

# serialization_failure and deadlock_detected: the transaction did nothing and may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
# lock_not_available (lock_timeout) and query_canceled (statement_timeout): the statement waited too long.
TIMED_OUT_SQLSTATES = frozenset({"55P03", "57014"})


def is_retryable(error: DBAPIError) -> bool:
    """True when PostgreSQL rolled the transaction back and asks the client to run it again."""
    return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def timed_out(error: DBAPIError) -> bool:
    """True when PostgreSQL gave up on a statement after DATABASE_LOCK_TIMEOUT_MS or DATABASE_STATEMENT_TIMEOUT_MS."""
    return getattr(error.orig, "sqlstate", None) in TIMED_OUT_SQLSTATES


async def in_transaction(
    engine: AsyncEngine, unit_of_work: Callable[[AsyncConnection], Awaitable[T]], *, attempts: int = 3
) -> T:
    """Run `unit_of_work` in one transaction: all of its writes commit together or not at all."""
    for attempt in range(1, attempts + 1):
        try:
            async with engine.begin() as connection:
                return await unit_of_work(connection)
        except DBAPIError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            log.warning("transaction rolled back by PostgreSQL (%s), running it again", error.orig.sqlstate)
    raise AssertionError("unreachable")
