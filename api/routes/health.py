"""Liveness, readiness and metrics for operators and orchestrators."""

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from api.auth import require_metrics_token
from api.deps import EngineDep
from api.metrics import EXPOSITION
from api.openapi import problems
from db.engine import autocommit_connection

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


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problems(401)},
    dependencies=[Depends(require_metrics_token)],
    # The token is optional: needed only where METRICS_TOKEN is set (FastAPI appends this to the token's entry).
    openapi_extra={"security": [{}]},
)
async def metrics(request: Request, engine: EngineDep) -> Response:
    """Prometheus metrics of this process, and the outbox backlog as read at most METRICS_OUTBOX_INTERVAL_SECONDS ago.

    Open unless METRICS_TOKEN is set; then `Authorization: Bearer $METRICS_TOKEN` is required (else 401).
    """
    await request.app.state.outbox_gauges.observe(engine)
    return Response(await EXPOSITION.latest(), media_type=CONTENT_TYPE_LATEST)
