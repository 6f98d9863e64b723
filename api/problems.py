"""Every error leaves the API as application/problem+json with a stable `code`; mapped here, only here."""

import functools
import logging
import re
from http import HTTPStatus

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.metrics import PROBLEMS
from db.errors import DomainError
from db.orders.errors import (
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    InvalidOrderState,
    OrderContention,
    OrderExpired,
    OrderNotFound,
    OrderRejected,
    TooManyUnpaidOrders,
    WebhookIdReused,
)
from db.outbox.operations import (
    AmbiguousEventId,
    DeliveryNotFound,
    DestinationNotFound,
    EventNotFailed,
    EventNotFound,
    EventNotPending,
)
from sneaker_orders.redaction import without_credentials

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Most specific first: the first class an error is an instance of decides its status.
STATUS_OF_DOMAIN_ERRORS: list[tuple[type[DomainError], int]] = [
    (OrderRejected, 400),
    (OrderNotFound, 404),
    (InvalidOrderState, 409),
    (OrderExpired, 409),
    (TooManyUnpaidOrders, 429),
    (IdempotencyKeyInFlight, 409),
    (WebhookIdReused, 409),
    (IdempotencyKeyReused, 422),
    (OrderContention, 503),
    (EventNotFound, 404),
    (DestinationNotFound, 404),
    (DeliveryNotFound, 404),
    (EventNotFailed, 409),
    (EventNotPending, 409),
    (AmbiguousEventId, 422),
]


class FieldProblem(BaseModel):
    """One field of a request that failed validation."""

    location: list[str | int]
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the stable `code` clients branch on."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem] | None = None


class ApiProblem(Exception):
    """An HTTP-level problem raised by a route (e.g. an unknown product id, a missing token)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.headers = status, code, detail, headers


# Rendered problem bodies by (status, code, detail), the most recent kept: in a sold-out drop thousands of
# buyers get the same refusal, which is rendered (model, JSON) once. Only the body: headers, counts, per answer.
RENDERED_PROBLEMS_KEPT = 1024


class _RenderedProblem(JSONResponse):
    """A problem+json response whose body was rendered already (by JSONResponse.render, the same bytes)."""

    def render(self, content: bytes) -> bytes:
        return content


_rendered: dict[tuple[int, str, str], bytes] = {}
# (status, code) -> its PROBLEMS child: labels() costs a lock and checks on every problem.
_counted: dict[tuple[int, str], object] = {}


def problem_response(
    status: int, code: str, detail: str, *, errors: list[FieldProblem] | None = None, headers=None
) -> JSONResponse:
    """A problem+json response, counted by status and code; URLs in `detail` shown without credentials."""
    counter = _counted.get((status, code))
    if counter is None:
        counter = _counted[(status, code)] = PROBLEMS.labels(str(status), code)
    counter.inc()
    if errors is not None:
        return JSONResponse(
            _problem(status, code, detail, errors), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
        )
    body = _rendered.get((status, code, detail))
    if body is None:
        body = JSONResponse(_problem(status, code, detail, None)).body
        if len(_rendered) >= RENDERED_PROBLEMS_KEPT:
            del _rendered[next(iter(_rendered))]
        _rendered[(status, code, detail)] = body
    return _RenderedProblem(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _problem(status: int, code: str, detail: str, errors: list[FieldProblem] | None) -> dict:
    """The problem document, as JSON-ready data."""
    return Problem(
        type=f"urn:sneaker-orders:problem:{code.lower().replace('_', '-')}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=without_credentials(detail),
        code=code,
        errors=errors,
    ).model_dump(exclude_none=True)


def status_of(error: DomainError) -> int:
    """The HTTP status of a domain error."""
    return next(status for kind, status in STATUS_OF_DOMAIN_ERRORS if isinstance(error, kind))


async def _domain_error(request: Request, error: DomainError) -> JSONResponse:
    retry_after = None if error.retry_after_seconds is None else {"Retry-After": str(error.retry_after_seconds)}
    return problem_response(status_of(error), error.code, error.detail, headers=retry_after)


async def _api_problem(request: Request, error: ApiProblem) -> JSONResponse:
    return problem_response(error.status, error.code, error.detail, headers=error.headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    fields = [FieldProblem(location=list(problem["loc"]), message=problem["msg"]) for problem in error.errors()]
    detail = "; ".join(f"{'.'.join(map(str, field.location))}: {field.message}" for field in fields)
    return problem_response(422, "VALIDATION_ERROR", detail, errors=fields)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(error.status_code, f"HTTP_{error.status_code}")
    headers = getattr(error, "headers", None)
    documented = _methods_of_path(request) if error.status_code == 405 else None
    if documented:
        # Starlette names the methods of the first route of the path only; a path may have several.
        headers = {**(headers or {}), "Allow": ", ".join(documented)}
    return problem_response(error.status_code, code, str(error.detail), headers=headers)


def _methods_of_path(request: Request) -> list[str] | None:
    """The methods /openapi.json documents for the request's path, or None for a path it does not document.

    Of the templates that match, the most literal one is the path's (`/events/replay`, not `/events/{event_id}`).
    """
    path = request.scope["path"]
    matching = [
        (template.count("{"), methods)
        for template, methods in _documented_paths(request.app)
        if _template_regex(template).fullmatch(path)
    ]
    return sorted(min(matching)[1]) if matching else None


def _documented_paths(app) -> list[tuple[str, set[str]]]:
    return [(template, {method.upper() for method in item}) for template, item in app.openapi()["paths"].items()]


@functools.cache
def _template_regex(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    log.error("database unavailable during %s %s: %s", request.method, request.url.path, error)
    return problem_response(
        503, "DATABASE_UNAVAILABLE", "the database cannot be reached; nothing was written", headers={"Retry-After": "1"}
    )


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error during %s %s", request.method, request.url.path)
    return problem_response(500, "INTERNAL_ERROR", "an unexpected error occurred; the server log has the details")


# Each kind of error and the handler of its response; an error is handled by the first class of its MRO found here.
_HANDLERS = {
    DomainError: _domain_error,
    ApiProblem: _api_problem,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    **dict.fromkeys(
        (OperationalError, InterfaceError, PoolTimeoutError, psycopg.OperationalError), _database_unavailable
    ),
}


def install_problem_handlers(app: FastAPI) -> None:
    """Route every kind of error to its problem+json response."""
    for kind, handler in _HANDLERS.items():
        app.add_exception_handler(kind, handler)
    app.add_exception_handler(Exception, _unexpected)
