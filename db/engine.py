"""The async engine every process shares: one pool, UTC sessions, short connect timeout."""

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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
