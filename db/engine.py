"""The async engine every process shares: one bounded pool, UTC sessions, timeouts on every transaction."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from sneaker_orders.settings import Settings

DEFAULTS = Settings.model_fields


def create_engine(
    database_url: str,
    *,
    pool_size: int = DEFAULTS["database_pool_size"].default,
    max_overflow: int = DEFAULTS["database_pool_max_overflow"].default,
    pool_timeout_seconds: float = DEFAULTS["database_pool_timeout_seconds"].default,
    lock_timeout_ms: int = DEFAULTS["database_lock_timeout_ms"].default,
    statement_timeout_ms: int = DEFAULTS["database_statement_timeout_ms"].default,
    application_name: str = "sneaker-orders",
) -> AsyncEngine:
    """Build the process-wide async engine for `database_url`."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_seconds,
        connect_args={
            "connect_timeout": 5,
            "application_name": application_name,
            # Timestamps come back in UTC, whatever the server's zone. No transaction waits for a lock,
            # or runs, without bound: a row held by someone else fails only the requests that need it.
            "options": f"-c timezone=UTC -c lock_timeout={lock_timeout_ms} -c statement_timeout={statement_timeout_ms}",
        },
    )


def create_engine_from_settings(settings: Settings, *, application_name: str) -> AsyncEngine:
    """The engine of a long-running process, sized and bounded by its settings."""
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_max_overflow,
        pool_timeout_seconds=settings.database_pool_timeout_seconds,
        lock_timeout_ms=settings.database_lock_timeout_ms,
        statement_timeout_ms=settings.database_statement_timeout_ms,
        application_name=application_name,
    )


@asynccontextmanager
async def autocommit_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection on which every statement is its own transaction.

    For reads and single-statement writes: no BEGIN and no ROLLBACK round trips around them.
    """
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection
