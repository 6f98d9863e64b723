"""Liveness, readiness and metrics for operators and orchestrators."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import EngineDep
from api.metrics import observe_outbox
from api.openapi import problems
from db.engine import autocommit_connection
from db.outbox.operations import outbox_health

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    """A health answer."""

    status: str


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses=problems(503))
async def readyz(engine: EngineDep) -> Health:
    """The database is reachable."""
    async with autocommit_connection(engine) as connection:
        await connection.execute(text("SELECT 1"))
    return Health(status="ready")


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(engine: EngineDep) -> Response:
    """Prometheus metrics of this process, and the outbox backlog as the database has it now."""
    try:
        observe_outbox(await outbox_health(engine))
    except SQLAlchemyError:
        observe_outbox(None)  # the process's own metrics are still worth serving; /readyz reports the database
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
