"""The async engine every process shares: one pool, UTC sessions, short connect timeout."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def create_engine(database_url: str, *, pool_size: int = 10, application_name: str = "sneaker-orders") -> AsyncEngine:
    """Build the process-wide async engine for `database_url`."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        connect_args={
            "connect_timeout": 5,
            "application_name": application_name,
            # Timestamps come back in UTC, whatever the server's zone.
            "options": "-c timezone=UTC",
        },
    )


@asynccontextmanager
async def autocommit_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement is its own transaction.

    For reads and single-statement writes: no BEGIN and no ROLLBACK round trips around them.
    """
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection
