"""Operations on the outbox, behind ADMIN_TOKEN: list deliveries, see an event, redrive, retry now, replay, discard.

Every route takes `?destination=NAME`: only that destination's deliveries (an unknown name is `404`
`DESTINATION_NOT_FOUND`); without it, every destination's.
"""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from api.auth import require_admin
from api.deps import EngineDep, SettingsDep
from api.openapi import problems
from api.problems import Problem
from api.schemas import OrderId
from db.outbox.operations import EventDetail, EventSummary, event_detail, list_events
from db.outbox.operator_actions import (
    ActedOn,
    ReplaySelection,
    discard_event,
    discard_failed,
    redrive_event,
    redrive_failed,
    replay_sent,
    retry_event_now,
    retry_now,
)
from db.statuses import EventStatus, LoggedOutcome, NoDelivery, OperatorAction
from sneaker_orders.settings import Settings

router = APIRouter(prefix="/events", tags=["operations"], dependencies=[Depends(require_admin)])

REQUESTED_BY = "api"
# A bulk action answers with at most this many of the event ids it acted on (oldest first).
IDS_SHOWN = 1000
# The routes that read a JSON body also answer 400 when the body is not JSON.
NOT_JSON = {400: {"model": Problem, "description": "the body is not JSON"}}


def _text(value):
    if not isinstance(value, str):
        raise ValueError("a time is an ISO 8601 string")
    return value


# An ISO 8601 time, given as a string (not a number of seconds).
IsoTime = Annotated[datetime, BeforeValidator(_text)]


# A destination's name, as a query parameter of every route here.
DestinationQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="only this destination's deliveries (default: every one's)"),
]


class EventOut(BaseModel):
    """An outbox event and its delivery: to `destination`, or (null) its state over every destination
    (FAILED if any delivery is, else PROCESSING or PENDING if any waits, else SENT; the largest retry_count)."""

    event_id: str
    destination: str | None
    event_type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    status: EventStatus
    retry_count: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryOut(BaseModel):
    """The event's delivery to one destination."""

    destination: str
    status: EventStatus
    retry_count: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None


class AttemptOut(BaseModel):
    """One delivery attempt to `destination`, with a link to the Temporal run that made it."""

    destination: str
    attempt_number: int
    attempted_at: datetime
    outcome: LoggedOutcome
    http_status: int | None
    error: str | None
    duration_ms: float | None
    workflow_id: str | None
    run_id: str | None
    temporal_ui_url: str | None


class RedriveOut(BaseModel):
    """An operator's redrive of the delivery to `destination`."""

    destination: str
    redriven_at: datetime
    requested_by: str
    retry_count_before: int
    last_error_before: str | None


class OperatorActionOut(BaseModel):
    """An operator's action on the event's delivery to `destination` (redrive, retry-now, replay, discard) and what
    that delivery was before it (`NONE`: a replay gave the destination a delivery it did not have)."""

    destination: str
    action: OperatorAction
    requested_at: datetime
    requested_by: str
    status_before: EventStatus | NoDelivery
    retry_count_before: int
    last_error_before: str | None
    details: dict | None


class EventDetailOut(EventOut):
    """An event with its payload, its delivery to each destination, every attempt and every operator action
    (`redrives`: the redrives among them)."""

    payload: dict
    deliveries: list[DeliveryOut]
    attempts: list[AttemptOut]
    redrives: list[RedriveOut]
    actions: list[OperatorActionOut]


class ActedOnOut(BaseModel):
    """A delivery an action took."""

    event_id: str
    destination: str


class ActionResultOut(BaseModel):
    """What a bulk action did (or, as a dry run, would do)."""

    action: OperatorAction
    dry_run: bool
    count: int = Field(description="deliveries acted on (an event's delivery to one destination each)")
    event_ids: list[str] = Field(description=f"the first {IDS_SHOWN} events of them, each once, oldest first")
    deliveries: list[ActedOnOut] = Field(description=f"the first {IDS_SHOWN} deliveries acted on")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = Field(default=False, strict=True, description="select the events, change nothing")


class RedriveBody(_Body):
    """Which FAILED events to redrive: every one, or those of one order."""

    order_id: OrderId | None = None


class RetryNowBody(_Body):
    """Every PENDING event waiting out a backoff becomes due now."""


class ReplayBody(_Body):
    """Which retained SENT events to deliver again: one order's, and/or those that occurred in [since, until)."""

    # Not strict as a whole: the times come as ISO 8601 strings.
    model_config = ConfigDict(extra="forbid", strict=False)

    order_id: Annotated[OrderId | None, Field(strict=True)] = None
    since: IsoTime | None = Field(default=None, description="ISO 8601; without an offset, UTC")
    until: IsoTime | None = Field(default=None, description="exclusive; only with `since`")

    @model_validator(mode="after")
    def _selects_something(self) -> "ReplayBody":
        if self.order_id is None and self.since is None:
            raise ValueError("name an order_id, or a since (and optionally until)")
        if self.until is not None and self.since is None:
            raise ValueError("until needs since")
        return self


class DiscardBody(_Body):
    """Discard every FAILED event created more than `older_than_seconds` ago."""

    older_than_seconds: Annotated[float, Field(ge=0, le=10 * 365 * 86400, description="e.g. 2592000 for 30 days")]


def _event(summary: EventSummary) -> EventOut:
    return EventOut(**vars(summary))


def _detail(detail: EventDetail, settings: Settings) -> EventDetailOut:
    """The event's detail with links into the Web UI."""
    attempts = [
        AttemptOut(
            **vars(attempt),
            temporal_ui_url=settings.temporal_run_url(attempt.workflow_id, attempt.run_id)
            if attempt.workflow_id and attempt.run_id
            else None,
        )
        for attempt in detail.attempts
    ]
    return EventDetailOut(
        **vars(detail.event),
        payload=detail.payload,
        deliveries=[DeliveryOut(**vars(delivery)) for delivery in detail.deliveries],
        attempts=attempts,
        redrives=[RedriveOut(**vars(redrive)) for redrive in detail.redrives],
        actions=[OperatorActionOut(**vars(action)) for action in detail.actions],
    )


def _result(action: OperatorAction, acted: list[ActedOn], dry_run: bool) -> ActionResultOut:
    event_ids = list(dict.fromkeys(delivery.event_id for delivery in acted))
    return ActionResultOut(
        action=action,
        dry_run=dry_run,
        count=len(acted),
        event_ids=event_ids[:IDS_SHOWN],
        deliveries=[ActedOnOut(**vars(delivery)) for delivery in acted[:IDS_SHOWN]],
    )


@router.get("", responses=problems(401, 404, 422, 503))
async def get_events(
    engine: EngineDep,
    status: EventStatus | None = None,
    order_id: Annotated[OrderId | None, Query(description="only the events of this order")] = None,
    destination: DestinationQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[EventOut]:
    """Deliveries (one per event and destination), newest event first."""
    deliveries = await list_events(engine, status=status, order_id=order_id, destination=destination, limit=limit)
    return [_event(delivery) for delivery in deliveries]


@router.post("/redrive", responses=NOT_JSON | problems(401, 404, 422, 503))
async def redrive_all(body: RedriveBody, engine: EngineDep, destination: DestinationQuery = None) -> ActionResultOut:
    """Put every FAILED delivery (or every one of `order_id`) back to PENDING, due now, with a fresh budget."""
    redriven = await redrive_failed(
        engine, requested_by=REQUESTED_BY, order_id=body.order_id, destination=destination, dry_run=body.dry_run
    )
    return _result("REDRIVE", redriven, body.dry_run)


@router.post("/retry-now", responses=NOT_JSON | problems(401, 404, 422, 503))
async def retry_all_now(body: RetryNowBody, engine: EngineDep, destination: DestinationQuery = None) -> ActionResultOut:
    """Make every PENDING delivery that waits out a backoff due now (its budget of attempts unchanged)."""
    pulled = await retry_now(engine, requested_by=REQUESTED_BY, destination=destination, dry_run=body.dry_run)
    return _result("RETRY_NOW", pulled, body.dry_run)


@router.post("/replay", responses=NOT_JSON | problems(401, 404, 422, 503))
async def replay(body: ReplayBody, engine: EngineDep, destination: DestinationQuery = None) -> ActionResultOut:
    """Deliver events that are still retained again, with the same event_id, in order per order.

    For a destination that lost data: its SENT deliveries go back to PENDING, due now, and the relay sends
    each order's events in sequence again. With `?destination=`, also the selected events that destination
    has no delivery of (it was added after they were written): how a new destination gets events from a
    chosen point. Events already removed by retention cannot be replayed.
    """
    selection = ReplaySelection(order_id=body.order_id, since=body.since, until=body.until)
    replayed = await replay_sent(
        engine, selection, requested_by=REQUESTED_BY, destination=destination, dry_run=body.dry_run
    )
    return _result("REPLAY", replayed, body.dry_run)


@router.post("/discard", responses=NOT_JSON | problems(401, 404, 422, 503))
async def discard_all(body: DiscardBody, engine: EngineDep, destination: DestinationQuery = None) -> ActionResultOut:
    """Delete every FAILED delivery of an event created more than `older_than_seconds` ago (each one recorded with
    the event and its attempts); an event goes with its last delivery.

    The later events of their orders are then delivered to that destination: it will see a gap in `sequence`.
    """
    discarded = await discard_failed(
        engine,
        requested_by=REQUESTED_BY,
        older_than_seconds=body.older_than_seconds,
        destination=destination,
        dry_run=body.dry_run,
    )
    return _result("DISCARD", discarded, body.dry_run)


@router.get("/{event_id}", responses=problems(401, 404, 422, 503))
async def get_event(
    event_id: uuid.UUID, engine: EngineDep, settings: SettingsDep, destination: DestinationQuery = None
) -> EventDetailOut:
    """One event with its payload, its deliveries, every delivery attempt (linked to its Temporal run) and every
    operator action; the top-level state is `destination`'s delivery, or the state over every destination."""
    return _detail(await event_detail(engine, event_id, destination=destination), settings)


@router.post("/{event_id}/redrive", responses=problems(401, 404, 409, 422, 503))
async def redrive(
    event_id: uuid.UUID, engine: EngineDep, settings: SettingsDep, destination: DestinationQuery = None
) -> EventDetailOut:
    """Put the event's FAILED deliveries (to `destination`, or every one) back to PENDING, due now, with a fresh
    budget of attempts (`409 EVENT_NOT_FAILED` when none is FAILED)."""
    detail = await redrive_event(engine, event_id, requested_by=REQUESTED_BY, destination=destination)
    return _detail(detail, settings)


@router.post("/{event_id}/retry-now", responses=problems(401, 404, 409, 422, 503))
async def retry_event(
    event_id: uuid.UUID, engine: EngineDep, settings: SettingsDep, destination: DestinationQuery = None
) -> EventDetailOut:
    """Make the event's PENDING deliveries (to `destination`, or every one) due now instead of after their backoff
    (`409 EVENT_NOT_PENDING` when none is PENDING)."""
    detail = await retry_event_now(engine, event_id, requested_by=REQUESTED_BY, destination=destination)
    return _detail(detail, settings)


@router.post("/{event_id}/discard", responses=problems(401, 404, 409, 422, 503))
async def discard(event_id: uuid.UUID, engine: EngineDep, destination: DestinationQuery = None) -> ActionResultOut:
    """Delete the event's FAILED deliveries (to `destination`, or every one), recorded with their attempts
    (`409 EVENT_NOT_FAILED` when none is FAILED); the event goes with its last delivery.

    The later events of its order are then delivered to that destination: it will see a gap in `sequence`.
    """
    discarded = await discard_event(engine, event_id, requested_by=REQUESTED_BY, destination=destination)
    return _result("DISCARD", discarded, dry_run=False)
