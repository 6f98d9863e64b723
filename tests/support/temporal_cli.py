"""The real `temporal` CLI, as an operator runs it, against a test's dev server."""

import subprocess

from devstack.local_temporal import TEMPORAL_BINARY


def delete_schedules(temporal_address: str, schedule_ids: list[str]) -> None:
    """Delete a test's schedules (those that exist), so that they start no more runs."""
    for schedule_id in schedule_ids:
        subprocess.run(
            [str(TEMPORAL_BINARY), "schedule", "delete", "--schedule-id", schedule_id, "--address", temporal_address],
            capture_output=True,
            timeout=60,
        )
