"""Alembic environment: migrations run on a plain (sync) connection to the configured database."""

from alembic import context
from sqlalchemy import create_engine, pool

from db.tables import metadata
from sneaker_orders.settings import Settings

config = context.config


def run_migrations() -> None:
    """Apply migrations to `sqlalchemy.url`, or to DATABASE_URL when Alembic runs from the command line."""
    url = config.get_main_option("sqlalchemy.url") or Settings().database_url
    if not url:
        raise SystemExit("set DATABASE_URL to the database to migrate")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
