"""Operations on the outbox, behind ADMIN_TOKEN: list events, see one with its attempts, redrive it."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.auth import require_admin
from api.deps import EngineDep, SettingsDep
from api.openapi import problems
from api.schemas import OrderId
from db.outbox.operations import EventDetail, EventSummary, event_detail, list_events, redrive_event
from db.statuses import LoggedOutcome
from sneaker_orders.settings import Settings

router = APIRouter(prefix="/events", tags=["operations"], dependencies=[Depends(require_admin)])

EventStatus = Literal["PENDING", "PROCESSING", "SENT", "FAILED"]


class EventOut(BaseModel):
    """An outbox event."""

    event_id: str
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


class AttemptOut(BaseModel):
    """One delivery attempt, with a link to the Temporal run that made it."""

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
    """An operator's redrive."""

    redriven_at: datetime
    requested_by: str
    retry_count_before: int
    last_error_before: str | None


class EventDetailOut(EventOut):
    """An event with its payload, every attempt and every redrive."""

    payload: dict
    attempts: list[AttemptOut]
    redrives: list[RedriveOut]


def _event(summary: EventSummary) -> EventOut:
    return EventOut(**vars(summary))


def _detail(detail: EventDetail, settings: Settings) -> EventDetailOut:
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
        attempts=attempts,
        redrives=[RedriveOut(**vars(redrive)) for redrive in detail.redrives],
    )


@router.get("", responses=problems(401, 422, 503))
async def get_events(
    engine: EngineDep,
    status: EventStatus | None = None,
    order_id: Annotated[OrderId | None, Query(description="only the events of this order")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[EventOut]:
    """Events, newest first."""
    return [_event(event) for event in await list_events(engine, status=status, order_id=order_id, limit=limit)]


@router.get("/{event_id}", responses=problems(401, 404, 422, 503))
async def get_event(event_id: uuid.UUID, engine: EngineDep, settings: SettingsDep) -> EventDetailOut:
    """One event with its payload, every delivery attempt (linked to its Temporal run) and every redrive."""
    return _detail(await event_detail(engine, event_id), settings)


@router.post("/{event_id}/redrive", responses=problems(401, 404, 409, 422, 503))
async def redrive(event_id: uuid.UUID, engine: EngineDep, settings: SettingsDep) -> EventDetailOut:
    """Put a FAILED event back to PENDING, due now, with a fresh budget of attempts."""
    return _detail(await redrive_event(engine, event_id, requested_by="api"), settings)
