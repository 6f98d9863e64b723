"""A/B of what the fan-out to destinations costs an event's insert: pgbench, the trigger on and off, interleaved.

    .venv/bin/python bench/fanout_trigger.py [--rounds 8] [--seconds 5] [--destinations 1]

One embedded PostgreSQL migrated to the newest schema (durability off, as the other benches); each
round runs pgbench for `--seconds` on 4 clients inserting one `order_events` row per transaction, once
with the trigger that gives the event a delivery per destination and once with it disabled, in turn.
Prints inserts per second of each and the trigger's cost per event, from the medians.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db.migrate import upgrade_to_newest  # noqa: E402
from devstack.local_postgres import libpq_url, start_embedded_postgres  # noqa: E402

INSERT = (
    "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type, payload)"
    " VALUES (gen_random_uuid(), 'order', CAST(gen_random_uuid() AS text), 1, 'OrderCreated',"
    " '{\"order_id\": 1}');\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--destinations", type=int, default=1, help="destinations every event goes to")
    args = parser.parse_args()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as scratch:
        url = start_embedded_postgres(Path(scratch), delete_on_exit=True)
        upgrade_to_newest(url)
        dsn = libpq_url(url)
        script = Path(scratch) / "insert.sql"
        script.write_text(INSERT)
        rates: dict[str, list[float]] = {"trigger on": [], "trigger off": []}
        with psycopg.connect(dsn, autocommit=True) as connection:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                connection.execute(f"ALTER SYSTEM SET {setting} = off")
            connection.execute("SELECT pg_reload_conf()")
            for number in range(2, args.destinations + 1):
                connection.execute("INSERT INTO destinations (name) VALUES (%s)", (f"platform-{number}",))
            for _ in range(args.rounds):
                for side in rates:
                    switch = "ENABLE" if side == "trigger on" else "DISABLE"
                    connection.execute(f"ALTER TABLE order_events {switch} TRIGGER order_events_to_destinations")
                    command = [str(POSTGRES_BIN_PATH / "pgbench"), "-n", "-M", "prepared", "-c", "4", "-j", "2"]
                    command += ["-T", str(args.seconds), "-f", str(script), dsn]
                    finished = subprocess.run(command, capture_output=True, text=True)
                    if finished.returncode:
                        raise SystemExit(f"pgbench failed: {finished.stderr}")
                    output = finished.stdout
                    rates[side].append(float(re.search(r"tps = ([\d.]+)", output).group(1)))
    on, off = (statistics.median(rates[side]) for side in rates)
    report = {
        "destinations": args.destinations,
        "inserts_per_s": {side: [round(rate) for rate in values] for side, values in rates.items()},
        "median_inserts_per_s": {"trigger on": round(on), "trigger off": round(off)},
        "trigger_us_per_event_at_4_clients": round(1e6 / on - 1e6 / off, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
