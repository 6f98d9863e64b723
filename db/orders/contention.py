"""A statement that waited too long for a lock (or ran too long) becomes the order domain's 'try again'."""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from db.orders.errors import OrderContention
from db.transactions import timed_out


@contextmanager
def timeouts_as_contention(what: str) -> Iterator[None]:
    """Raise OrderContention, naming `what`, when PostgreSQL's lock_timeout or statement_timeout stops a statement."""
    try:
        yield
    except DBAPIError as error:
        if timed_out(error):
            raise OrderContention(f"{what} is locked by another transaction; please try again") from error
        raise
