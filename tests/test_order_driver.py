"""The order driver (db/orders/driver.py): psycopg's internals it relies on, and every parameter type it claims."""

import asyncio
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from psycopg import errors, pq
from psycopg.adapt import Transformer

from db.engine import create_engine
from db.orders.driver import driver_connection, text_form

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _pinned_psycopg() -> str:
    """The minor version pyproject.toml pins psycopg to, as "3.3"."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [pin] = [dependency for dependency in dependencies if re.match(r"psycopg\b(?!-)", dependency)]
    low, high = re.fullmatch(r"psycopg\[binary\]>=(\d+\.\d+),<(\d+\.\d+)", pin).groups()
    major, minor = (int(part) for part in low.split("."))
    assert high == f"{major}.{minor + 1}", f"{pin} must pin one minor version"
    return low


def test_the_installed_psycopg_is_the_minor_version_the_driver_was_written_against():
    assert psycopg.__version__.startswith(_pinned_psycopg() + "."), psycopg.__version__


def test_the_psycopg_internals_the_driver_uses_are_there():
    for method in (
        "enter_pipeline_mode",
        "exit_pipeline_mode",
        "send_prepare",
        "send_query_prepared",
        "pipeline_sync",
        "flush",
        "is_busy",
        "get_result",
        "consume_input",
    ):
        assert callable(getattr(pq.PGconn, method)), method
    for attribute in ("socket", "status", "pipeline_status", "transaction_status"):
        assert hasattr(pq.PGconn, attribute), attribute
    assert {"TUPLES_OK", "COMMAND_OK", "FATAL_ERROR", "PIPELINE_SYNC"} <= set(pq.ExecStatus.__members__)
    assert "OFF" in pq.PipelineStatus.__members__ and "IDLE" in pq.TransactionStatus.__members__
    assert "OK" in pq.ConnStatus.__members__
    assert callable(Transformer.set_pgresult) and callable(Transformer.load_rows)
    assert callable(errors.error_from_result)
    assert issubclass(errors.InvalidSqlStatementName, psycopg.Error)


def run_pipelined(database_url: str, statements) -> list[list[tuple]]:
    async def run():
        engine = create_engine(database_url, pool_size=1)
        try:
            async with driver_connection(engine) as driver:
                return await driver.run_pipelined(statements)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_every_parameter_type_the_driver_claims_reaches_postgresql_as_itself(database_url):
    at = datetime(2026, 12, 3, 15, 0, 1, 234567, tzinfo=UTC)
    event = UUID("12345678-1234-5678-1234-567812345678")
    awkward = ["plain", 'with "quotes"', "back\\slash", "comma, brace } and space", "", "NULL"]
    [rows] = run_pipelined(
        database_url,
        [
            (
                "SELECT CAST(%(number)s AS bigint), CAST(%(text)s AS text), CAST(%(flag)s AS boolean),"
                " CAST(%(at)s AS timestamptz), CAST(%(ids)s AS integer[]), CAST(%(names)s AS text[]),"
                " CAST(%(event)s AS uuid), CAST(%(payload)s AS jsonb), CAST(%(nothing)s AS text)",
                {
                    "number": -(2**40),
                    "text": "Nike \"Dunk\" 'Low'",
                    "flag": False,
                    "at": at,
                    "ids": [3, None, -1],
                    "names": [*awkward, None],
                    "event": event,
                    "payload": {"order_id": 1, "items": [{"quantity": 2}]},
                    "nothing": None,
                },
            )
        ],
    )
    assert rows == [
        (
            -(2**40),
            "Nike \"Dunk\" 'Low'",
            False,
            at,
            [3, None, -1],
            [*awkward, None],
            event,
            {"order_id": 1, "items": [{"quantity": 2}]},
            None,
        )
    ]


@pytest.mark.parametrize("value", [1.5, b"bytes", [1.5], [[1]], [True], (1, 2), datetime(2026, 1, 1)])
def test_a_parameter_the_driver_has_no_text_form_for_is_refused_by_name(value):
    with pytest.raises((TypeError, ValueError)):
        text_form(value)


def test_a_refused_parameter_names_its_type():
    with pytest.raises(TypeError, match="float"):
        text_form([1, 2.5])


def test_a_statement_with_a_parameter_the_driver_cannot_send_is_refused_and_never_runs(database_url):
    with pytest.raises(TypeError, match="float"):
        run_pipelined(database_url, [("SELECT CAST(%(ids)s AS integer[])", {"ids": [1, 2.5]})])
