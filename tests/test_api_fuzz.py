"""schemathesis, every check and every phase (examples, coverage, fuzzing, stateful) against the API with a
customer's token: the only finding allowed is IDEMPOTENCY_KEY_REUSED, a 422 by the Idempotency-Key draft for a
schema-valid request that reuses a key with another body."""

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from tests.support.customers import token_for

# Bounded: the run stops generating after this long (and the test after twice that).
RUN_SECONDS = 40
ALLOWED_FINDING = "IDEMPOTENCY_KEY_REUSED"

# A schema-valid order may still break a business rule (400, documented): accepted, not a finding.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""


@pytest.mark.heavy  # 40 s that take a core: in a lane, so that it never runs beside two speed bars
def test_schemathesis_with_every_check_finds_nothing_but_a_reused_key(api_url, catalog, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    report = tmp_path / "junit.xml"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        *("--config-file", str(config)),
        "run",
        f"{api_url}/openapi.json",
        *("--checks", "all"),
        *("--phases", "examples,coverage,fuzzing,stateful"),
        *("--header", f"Authorization: Bearer {token_for('fuzzer', ttl_seconds=3600)}"),
        *("--max-time", str(RUN_SECONDS)),
        *("--seed", "14"),
        *("--report", "junit", "--report-junit-path", str(report)),
    ]

    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS * 2 + 60, cwd=tmp_path)

    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    findings = [
        f"{case.get('name')}: {(failure.get('message') or '')}\n{failure.text or ''}"
        for case in ElementTree.parse(report).iter("testcase")
        for failure in case.iter("failure")
    ]
    unexpected = [finding for finding in findings if ALLOWED_FINDING not in finding]
    assert not unexpected, "\n\n".join(unexpected)[:6000]
    assert "Stateful" in run.stdout and "Coverage" in run.stdout and "Fuzzing" in run.stdout, run.stdout[-3000:]
