"""POST /orders answered by one pure ASGI handler, in front of FastAPI's routing, dependencies and middleware.

The shop's hottest request. Through FastAPI it cost about 120 µs of CPU before reaching our code
(routing over every route, dependency solving, seven middleware layers; measured in-process with a
route that did nothing), a third of what the whole order may cost. Here the request is read once
(the body under the same guard as every body, api/request_guard.py), the customer's token checked
(api/customer_auth.py, verified tokens kept until their exp), the body validated once
(`model_validate_json`), and the order's JSON, serialised once when it was decided, answered as it
is. Errors are answered by the app's own problem handlers (api/problems.py); an unexpected one goes
on to the server's error handler, as from any route.

The FastAPI route of POST /orders (api/routes/orders.py) declares the endpoint for the OpenAPI
schema and answers exactly alike: tests/test_place_order_endpoint.py sends the same requests to both.
"""

from time import perf_counter

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from api.customer_auth import bearer_token, customer_of_token
from api.metrics import REQUEST_DURATION
from api.order_placement import place_for_customer, placed_headers
from api.problems import problem_for
from api.request_guard import read_guarded_body
from api.schemas import IdempotencyKeyValue, PlaceOrderBody, body_errors

PATH = "/orders"
_IDEMPOTENCY_KEY = TypeAdapter(IdempotencyKeyValue)
_JSON = b"application/json"


class PlaceOrderEndpoint:
    """Pure ASGI middleware: POST /orders is answered here, every other request goes on to `app`."""

    def __init__(self, app, *, state) -> None:
        # `state` is the app's: settings, customer tokens, write slots, catalog cache, and (once started) engine.
        self.app, self.state = app, state
        settings = state.settings
        self.max_bytes, self.timeout_seconds = settings.max_request_bytes, settings.request_body_timeout_seconds
        self._durations = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500
        try:
            status = await self._answer(scope, receive, send)
        finally:
            self._observe(status, perf_counter() - started)

    async def _answer(self, scope, receive, send) -> int:
        """Answer the request; the status answered."""
        body = await read_guarded_body(scope, receive, max_bytes=self.max_bytes, timeout_seconds=self.timeout_seconds)
        if not isinstance(body, bytes):
            if body is None:
                return 499  # the client left before its body arrived
            await body(scope, receive, send)
            return body.status_code
        try:
            json, headers = await self._place(scope["headers"], body)
        except Exception as error:
            response = await problem_for(Request(scope, receive), error)
            if response is None:
                raise
            await response(scope, receive, send)
            return response.status_code
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": json})
        return 201

    async def _place(self, raw_headers, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The order's JSON and the response headers; raises what the route's handlers answer."""
        authorization = content_type = idempotency_key = None
        for name, value in raw_headers:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"idempotency-key" and idempotency_key is None:
                idempotency_key = value.decode("latin-1")
        customer = await customer_of_token(self.state.customer_tokens, bearer_token(authorization))
        self.state.customer_rate_limit.check(customer)
        order, key = _validated(content_type, body, idempotency_key)
        placed = await place_for_customer(self.state, customer, order, key)
        json = placed.json.encode()
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(json))]
        headers += [(name.lower().encode(), value.encode()) for name, value in placed_headers(placed).items()]
        return json, headers

    def _observe(self, status: int, seconds: float) -> None:
        child = self._durations.get(status)
        if child is None:
            child = self._durations[status] = REQUEST_DURATION.labels("POST", PATH, str(status))
        child.observe(seconds)


def _validated(
    content_type: bytes | None, body: bytes, idempotency_key: str | None
) -> tuple[PlaceOrderBody, str | None]:
    """The body and the key as FastAPI would validate them for the route: every problem in one 422."""
    problems = []
    if idempotency_key is not None:
        try:
            idempotency_key = _IDEMPOTENCY_KEY.validate_python(idempotency_key)
        except ValidationError as invalid:
            problems += [{**error, "loc": ("header", "Idempotency-Key")} for error in invalid.errors(include_url=False)]
    order = None
    if not _is_json(content_type):
        problems.append(
            {
                "type": "model_attributes_type",
                "loc": ("body",),
                "msg": "the body must be JSON (Content-Type: application/json)",
                "input": None,
            }
        )
    else:
        try:
            order = PlaceOrderBody.model_validate_json(body)
        except ValidationError as invalid:
            problems += body_errors(invalid)
    if problems:
        raise RequestValidationError(problems)
    return order, idempotency_key


def _is_json(content_type: bytes | None) -> bool:
    """application/json or application/*+json, parameters aside, as FastAPI requires of a JSON body."""
    if content_type is None:
        return False
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == _JSON or (media_type.startswith(b"application/") and media_type.endswith(b"+json"))
