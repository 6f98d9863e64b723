"""OpenAPI details FastAPI does not infer: error responses as application/problem+json, with their headers."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_MEDIA_TYPE, Problem

_DESCRIPTIONS = {
    400: "a business rule refused the order; nothing was written",
    401: "missing, expired or invalid credentials (code UNAUTHORIZED)",
    404: "no such resource (or not one of the caller's)",
    408: "the request body was sent too slowly (code REQUEST_TIMEOUT)",
    409: "the resource is in a state that does not allow this, or the request is already in flight",
    413: "the request body is larger than MAX_REQUEST_BYTES (code REQUEST_TOO_LARGE); it was not read",
    422: "the request is malformed",
    429: "too many requests or unpaid orders; retry after Retry-After seconds",
    503: "the database cannot be reached, or the order's rows stayed locked; nothing was written",
}

_RETRY_AFTER = {"description": "seconds after which trying again makes sense", "schema": {"type": "integer"}}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "the authentication scheme expected", "schema": {"type": "string"}}},
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}

# Every request with a body may meet the guard of api/request_guard.py.
BODY_GUARD_STATUSES = (408, 413)


def problems(*statuses: int, codes: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route whose errors are these statuses; `codes` names a status's codes on this route."""
    codes = codes or {}
    return {
        status: {
            "model": Problem,
            "description": _DESCRIPTIONS[status] + (f"; code {codes[status]}" if status in codes else ""),
            **_headers(status),
        }
        for status in statuses
    }


def _headers(status: int) -> dict[str, Any]:
    return {"headers": _HEADERS[status]} if status in _HEADERS else {}


def install_openapi(app: FastAPI) -> None:
    """Serve a schema where every 4xx/5xx body is declared as application/problem+json."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for operation in _operations(schema):
                # A body declared with openapi_extra (a direct route's) brings the schemas it refers to.
                for content in operation.get("requestBody", {}).get("content", {}).values():
                    components.update(content["schema"].pop("$defs", {}))
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
