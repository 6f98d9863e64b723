"""Destinations as configuration: DESTINATIONS_FILE (JSON or TOML) or today's one `platform`, and what the database
fans new events out to once the worker registers them."""

import asyncio
import json

import pytest
from pydantic import ValidationError

from db.engine import create_engine
from db.outbox.destinations import DestinationRoute, UnknownEventType, register_destinations
from sneaker_orders.settings import Settings
from tests.support.outbox_views import insert_pending_events


def test_without_a_file_the_platform_settings_make_one_destination_named_platform():
    settings = Settings(external_platform_url="https://platform.example", platform_token="t0ken")

    [destination] = settings.destinations()

    assert (destination.name, destination.url, destination.token.get_secret_value()) == (
        "platform",
        "https://platform.example",
        "t0ken",
    )
    assert destination.event_types is None


def test_a_json_list_and_a_toml_file_describe_the_same_destinations(tmp_path):
    listed = [
        {"name": "analytics", "url": "https://analytics.example"},
        {"name": "warehouse", "url": "http://wms.internal:8080", "token": "s3cret", "event_types": ["OrderConfirmed"]},
    ]
    (tmp_path / "destinations.json").write_text(json.dumps(listed))
    (tmp_path / "destinations.toml").write_text(
        '[[destinations]]\nname = "analytics"\nurl = "https://analytics.example"\n\n'
        '[[destinations]]\nname = "warehouse"\nurl = "http://wms.internal:8080"\ntoken = "s3cret"\n'
        'event_types = ["OrderConfirmed"]\n'
    )

    from_json = Settings(destinations_file=tmp_path / "destinations.json").destinations()
    from_toml = Settings(destinations_file=tmp_path / "destinations.toml").destinations()

    assert from_json == from_toml
    assert [(d.name, d.event_types) for d in from_json] == [("analytics", None), ("warehouse", ("OrderConfirmed",))]
    assert "s3cret" not in repr(from_json)  # secrets stay out of logs and tracebacks


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[]", "at least 1"),
        ('[{"name": "a", "url": "http://a"}, {"name": "a", "url": "http://b"}]', "a repeated"),
        ('[{"name": "Bad Name", "url": "http://a"}]', "name"),
        ('[{"name": "a", "url": "ftp://a"}]', "url"),
        ('[{"name": "a", "url": "http://a", "colour": "red"}]', "colour"),
        ("{not json", "destinations.json"),
    ],
)
def test_a_bad_file_is_refused_with_a_message_that_says_why(tmp_path, content, says):
    path = tmp_path / "destinations.json"
    path.write_text(content)

    with pytest.raises(ValidationError, match=says):  # at start, as every refused setting: one line, why
        Settings(destinations_file=path)


def registered(database_url, routes):
    async def main():
        engine = create_engine(database_url)
        try:
            await register_destinations(engine, routes)
        finally:
            await engine.dispose()

    asyncio.run(main())


def deliveries_of(db, aggregate_id: str) -> dict[str, str]:
    return dict(
        db.execute(
            "SELECT destination, status FROM event_deliveries WHERE aggregate_id = %s", (aggregate_id,)
        ).fetchall()
    )


def test_a_destination_gets_the_events_written_after_it_was_added_of_the_types_it_takes(database_url, db, catalog):
    insert_pending_events(db, ["before"])
    registered(
        database_url,
        [
            DestinationRoute("platform"),
            DestinationRoute("warehouse", ("OrderCreated",)),
            DestinationRoute("crm", ("OrderExpired",)),
        ],
    )
    insert_pending_events(db, ["after"])  # OrderCreated events

    assert deliveries_of(db, "before") == {"platform": "PENDING"}  # never silently from the beginning
    assert deliveries_of(db, "after") == {"platform": "PENDING", "warehouse": "PENDING"}  # crm takes no OrderCreated


def test_a_destination_taken_out_of_the_configuration_gets_nothing_new(database_url, db, catalog):
    registered(database_url, [DestinationRoute("platform"), DestinationRoute("warehouse")])
    insert_pending_events(db, ["both"])
    registered(database_url, [DestinationRoute("platform")])
    insert_pending_events(db, ["platform only"])

    assert deliveries_of(db, "both") == {"platform": "PENDING", "warehouse": "PENDING"}  # what it had stays
    assert deliveries_of(db, "platform only") == {"platform": "PENDING"}
    removed = db.execute("SELECT removed_at IS NOT NULL FROM destinations WHERE name = 'warehouse'").fetchone()
    assert removed == (True,)


def test_an_unknown_event_type_is_refused_before_anything_changes(database_url, db, catalog):
    with pytest.raises(UnknownEventType, match="OrderShipped"):
        registered(database_url, [DestinationRoute("warehouse", ("OrderShipped",))])

    assert db.execute("SELECT name FROM destinations WHERE removed_at IS NULL").fetchall() == [("platform",)]
