"""`sneaker-orders events list` and `show` as operators read them: ages, ISO times, the payload, id prefixes."""

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.lifecycle_builders import event_ids_of, log_attempt, make_backing_off, make_failed, place_order

ISO_8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def test_show_prints_a_sent_events_payload_attempts_and_actions_without_a_next_attempt(api, db, catalog, cli):
    order = place_order(api, catalog)
    [event_id] = event_ids_of(db, order["order_id"])
    make_failed(db, event_id)
    assert cli("events", "redrive", event_id)[0] == 0
    log_attempt(db, event_id, "SENT", 201, timedelta(0))
    db.execute(
        "UPDATE event_deliveries SET status = 'SENT', sent_at = now(), last_error = NULL WHERE event_id = %s",
        (event_id,),
    )

    code, out, _ = cli("events", "show", event_id[:8])

    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"event      {event_id}  OrderCreated #1"
    assert re.fullmatch(rf"status     SENT at {ISO_8601.pattern}", lines[2])
    assert "next attempt" not in out
    assert "attempts   3, 2 failed" in lines
    assert [line.split()[:3:2] for line in lines if line.startswith("  #")] == [
        ["#1", "platform"],
        ["#2", "platform"],
        ["#3", "platform"],
    ]
    assert re.fullmatch(rf"  platform  SENT at {ISO_8601.pattern}", lines[lines.index("deliveries") + 1])
    assert all(ISO_8601.search(line) for line in lines if line.startswith("  #"))
    assert any(re.search(r"REDRIVE\s+platform\s+by cli", line) for line in lines)
    payload = "\n".join(lines[lines.index("payload") + 1 :])
    assert json.loads(payload) == order


def test_show_tells_when_a_pending_event_is_next_attempted(api, db, catalog, cli):
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_backing_off(db, event_id, due_in=timedelta(minutes=5))

    out = cli("events", "show", event_id)[1]

    assert re.search(rf"PENDING, next attempt at {ISO_8601.pattern} \(due in \d+\.\ds\); 1 of \d+ attempts used", out)
    assert "attempts   1, 1 failed" in out


def test_an_ambiguous_prefix_is_refused_with_its_candidates_and_an_unknown_one_is_not_found(api, db, catalog, cli):
    first, second = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(2))
    db.execute(
        "UPDATE order_events SET event_id = 'abcd0000-0000-4000-8000-000000000001' WHERE event_id = %s", (first,)
    )
    db.execute(
        "UPDATE order_events SET event_id = 'abcd0000-0000-4000-8000-000000000002' WHERE event_id = %s", (second,)
    )

    code, _, err = cli("events", "show", "abcd")
    unique = cli("events", "show", "abcd0000-0000-4000-8000-0000000000")[0]
    missing = cli("events", "show", "0123")
    garbage = cli("events", "show", "not-an-id")

    assert code == 1
    assert "2 events start with 'abcd'" in err
    assert "abcd0000-0000-4000-8000-000000000001" in err and "abcd0000-0000-4000-8000-000000000002" in err
    assert unique == 1  # still two candidates
    assert cli("events", "show", "abcd0000-0000-4000-8000-000000000002")[0] == 0
    assert (missing[0], missing[2].strip()) == (1, "no event id starts with '0123'")
    assert garbage[0] == 1 and "neither an event id nor the start of one" in garbage[2]


def test_list_shows_each_events_age(api, db, catalog, cli):
    old, new = (event_ids_of(db, place_order(api, catalog)["order_id"])[0] for _ in range(2))
    db.execute("UPDATE order_events SET created_at = now() - interval '3 hours' WHERE event_id = %s", (old,))

    code, out, _ = cli("events", "list")

    header, *rows = out.splitlines()
    assert code == 0 and header.split()[:8] == [
        "EVENT_ID",
        "TYPE",
        "ORDER",
        "SEQ",
        "DESTINATION",
        "STATUS",
        "AGE",
        "RETRIES",
    ]
    ages = {row.split()[0]: row.split()[6] for row in rows}
    assert ages[old] == "3h" and re.fullmatch(r"\d+s", ages[new])


def test_list_as_json_gives_iso_times(api, db, catalog, cli):
    place_order(api, catalog)

    [line] = cli("events", "list", "--json")[1].splitlines()

    created_at = json.loads(line)["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", created_at)


def test_no_events_command_prints_the_embedded_postgresql_log_line(api, db, catalog, database_url):
    # The suite's embedded server: an `events` command without DATABASE_URL joins it through the data directory.
    data_dir = Path(make_url(database_url).query["host"]).parent
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment["SNEAKER_ORDERS_DATA_DIR"] = str(data_dir)
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])

    for arguments in (["list"], ["show", event_id], ["retry-now", "--all", "--dry-run"]):
        finished = subprocess.run(
            [sys.executable, "-m", "cli.main", "events", *arguments],
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert finished.returncode == 0, finished.stderr
        assert event_id in finished.stdout or arguments[0] == "retry-now"
        assert "PostgreSQL" not in finished.stdout + finished.stderr
