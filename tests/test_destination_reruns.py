"""Re-runs started from Temporal for a destination of the configuration: its deliveries only, and one it never had.

The workflows and their real activities run on a worker of the test's own (real dev server, real database);
no relay runs, so what the re-runs did stays in the outbox to be looked at.
"""

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.event_reruns import EventRerunActivities
from db.engine import create_engine
from tests.support.lifecycle_builders import actions_of, event_ids_of, make_failed, make_sent, place_order, status_of
from tests.support.outbox_views import add_destination
from workflows.event_reruns import RedriveEvents, ReplayOrderEvents


def rerun(temporal, background, database_url, workflow, given: dict):
    """Run `workflow` with input `given` on a worker of its own; (workflow id, its result or its failure)."""

    async def run():
        engine = create_engine(database_url, pool_size=2)
        activities = EventRerunActivities(engine)
        queue = f"reruns-{uuid.uuid4().hex[:8]}"
        workflow_id = f"{workflow.__name__}-{uuid.uuid4().hex[:8]}"
        try:
            async with Worker(
                temporal.client,
                task_queue=queue,
                workflows=[ReplayOrderEvents, RedriveEvents],
                activities=[activities.replay_sent_events, activities.redrive_failed_events],
            ):
                try:
                    return workflow_id, await temporal.client.execute_workflow(
                        workflow.run, given, id=workflow_id, task_queue=queue, run_timeout=timedelta(minutes=1)
                    )
                except WorkflowFailureError as failed:
                    return workflow_id, failed.cause
        finally:
            await engine.dispose()

    return background.run(run())


def test_a_replay_for_a_destination_added_later_gives_it_the_orders_events(
    api, db, catalog, temporal, background, database_url
):
    order = place_order(api, catalog)
    [event_id] = event_ids_of(db, order["order_id"])
    make_sent(db, event_id)
    add_destination(db, "crm")

    workflow_id, report = rerun(
        temporal, background, database_url, ReplayOrderEvents, {"order_id": order["order_id"], "destination": "crm"}
    )

    assert (report.events, report.event_ids) == (1, [event_id])
    assert "for destination crm" in report.summary
    assert (status_of(db, event_id, "crm"), status_of(db, event_id, "platform")) == ("PENDING", "SENT")
    assert actions_of(db, event_id, "crm") == [("REPLAY", f"temporal:{workflow_id}", "NONE")]


def test_a_redrive_for_one_destination_leaves_the_others(api, db, catalog, temporal, background, database_url):
    add_destination(db, "crm")
    [event_id] = event_ids_of(db, place_order(api, catalog)["order_id"])
    make_failed(db, event_id, destination="platform")
    make_failed(db, event_id, destination="crm")

    _, report = rerun(temporal, background, database_url, RedriveEvents, {"all_failed": True, "destination": "crm"})

    assert report.events == 1
    assert (status_of(db, event_id, "crm"), status_of(db, event_id, "platform")) == ("PENDING", "FAILED")


@pytest.mark.parametrize("workflow", [ReplayOrderEvents, RedriveEvents])
def test_a_destination_that_is_not_configured_fails_the_run_at_once_and_changes_nothing(
    api, db, catalog, temporal, background, database_url, workflow
):
    order = place_order(api, catalog)
    [event_id] = event_ids_of(db, order["order_id"])
    make_sent(db, event_id)

    _, failure = rerun(
        temporal, background, database_url, workflow, {"order_id": order["order_id"], "destination": "warehouse"}
    )

    assert isinstance(failure, ApplicationError) and failure.type == "DestinationNotFound" and failure.non_retryable
    assert failure.message == "unknown destination 'warehouse'; destinations: platform"
    assert status_of(db, event_id) == "SENT" and actions_of(db, event_id) == []
