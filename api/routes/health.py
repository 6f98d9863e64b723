"""Liveness, readiness and metrics for operators and orchestrators."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import EngineDep
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


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
