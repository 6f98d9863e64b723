"""`GET /asyncapi.json`: the published contract of the events the platform receives (AsyncAPI 3.0), no token needed.

The document is kept in the repository as `api/asyncapi.json` and served as it is: its envelope and
payload schemas, one message per event type, and what may change without a new `schema_version`.
"""

import json
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response

ASYNCAPI_FILE = files("api") / "asyncapi.json"

router = APIRouter(tags=["events contract"])


@cache
def asyncapi_bytes() -> bytes:
    """The AsyncAPI document as kept in the repository (read once)."""
    return ASYNCAPI_FILE.read_bytes()


def asyncapi_document() -> dict:
    """The AsyncAPI document, parsed."""
    return json.loads(asyncapi_bytes())


@router.get(
    "/asyncapi.json",
    response_class=Response,
    responses={
        200: {
            "description": "The AsyncAPI 3.0 document of the order events (envelope, one message per event type)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def asyncapi() -> Response:
    """The events' contract: an AsyncAPI 3.0 document of what the external data platform receives."""
    return Response(asyncapi_bytes(), media_type="application/json")
