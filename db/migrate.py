"""Bringing a database's schema to the newest version with Alembic."""

from importlib import resources

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for `database_url`, with the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("db") / "migrations"))
    # ConfigParser interpolation would read a '%' of a URL-encoded password as a placeholder.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_newest(database_url: str) -> None:
    """Apply every migration the database does not have yet."""
    command.upgrade(alembic_config(database_url), "head")
