"""OpenAPI details FastAPI does not infer: error responses documented as application/problem+json."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_MEDIA_TYPE, Problem

_DESCRIPTIONS = {
    400: "a business rule refused the order; nothing was written",
    401: "missing or wrong bearer token",
    404: "no such resource",
    409: "the resource is in a state that does not allow this, or the request is already in flight",
    422: "the request is malformed",
    503: "the database cannot be reached; nothing was written",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route whose errors are these statuses."""
    return {status: {"model": Problem, "description": _DESCRIPTIONS[status]} for status in statuses}


def install_openapi(app: FastAPI) -> None:
    """Serve a schema where every 4xx/5xx body is declared as application/problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for operation in _operations(schema):
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status[0] in "45" and "application/json" in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _operations(schema: dict[str, Any]):
    for path_item in schema.get("paths", {}).values():
        yield from path_item.values()
