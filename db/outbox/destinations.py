"""The destinations the database fans events out to, kept in step with the configuration.

The worker registers the configured destinations at its start (`register_destinations`): a new one
gets every event written from then on (older ones only by `events replay --destination`); one no longer
configured is marked removed: it gets no new events, and what it had not received no longer holds
retention back. One that comes back gets events from its return on.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import autocommit_connection
from db.statuses import EVENT_TYPES


class UnknownEventType(ValueError):
    """A destination takes an event type that does not exist."""


@dataclass(frozen=True)
class DestinationRoute:
    """What the database needs to know of a destination: its name and the event types it takes (None: all)."""

    name: str
    event_types: tuple[str, ...] | None = None


_UPSERT = text(
    """
    INSERT INTO destinations (name, event_types) VALUES (:name, :event_types)
    ON CONFLICT (name) DO UPDATE SET
        event_types = EXCLUDED.event_types,
        added_at = CASE WHEN destinations.removed_at IS NULL THEN destinations.added_at ELSE now() END,
        removed_at = NULL
    """
)
_REMOVE_OTHERS = text(
    "UPDATE destinations SET removed_at = now() WHERE removed_at IS NULL AND NOT (name = ANY(CAST(:names AS text[])))"
)
_ACTIVE = text("SELECT name FROM destinations WHERE removed_at IS NULL ORDER BY name")


async def register_destinations(engine: AsyncEngine, routes: Sequence[DestinationRoute]) -> None:
    """Make `routes` the destinations new events go to (one transaction); raises UnknownEventType first."""
    for route in routes:
        unknown = sorted(set(route.event_types or ()) - set(EVENT_TYPES))
        if unknown:
            raise UnknownEventType(
                f"destination {route.name!r} takes unknown event types {', '.join(unknown)}; "
                f"known: {', '.join(EVENT_TYPES)}"
            )
    async with engine.begin() as connection:
        for route in routes:
            types = list(route.event_types) if route.event_types else None
            await connection.execute(_UPSERT, {"name": route.name, "event_types": types})
        await connection.execute(_REMOVE_OTHERS, {"names": [route.name for route in routes]})


async def active_destinations(engine: AsyncEngine) -> list[str]:
    """The names of the destinations new events go to (the configured ones), by name."""
    async with autocommit_connection(engine) as connection:
        return [row.name for row in await connection.execute(_ACTIVE)]
