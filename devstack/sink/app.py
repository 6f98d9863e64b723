"""The sink's HTTP API (aiohttp): `POST /events` as the contract's platform, plus controls for demos and tests."""

import asyncio
import json

from aiohttp import web
from pydantic import ValidationError

from devstack.sink.faults import Faults, FaultSettings
from devstack.sink.state import SinkState
from devstack.sink.verification import DeliveryCheck, DeliveryRefused

STATE = web.AppKey("state", SinkState)
FAULTS = web.AppKey("faults", Faults)
CHECK = web.AppKey("check", DeliveryCheck)


def create_sink_app(faults: FaultSettings | None = None, check: DeliveryCheck | None = None) -> web.Application:
    """A fresh sink, showing `faults` from the start, verifying deliveries as `check` says (default: not at all)."""
    app = web.Application()
    app[STATE] = SinkState()
    app[CHECK] = check or DeliveryCheck()
    app[FAULTS] = Faults()
    app[FAULTS].configure(faults or FaultSettings())
    app.router.add_post("/events", receive_event)
    app.router.add_get("/events", list_events)
    app.router.add_get("/stats", stats)
    app.router.add_get("/faults", get_faults)
    app.router.add_put("/faults", put_faults)
    app.router.add_post("/reset", reset)
    return app


async def receive_event(request: web.Request) -> web.StreamResponse:
    """Take one event: 201 the first time, 409 for a key already received; or the fault asked for."""
    state, faults = request.app[STATE], request.app[FAULTS]
    state.requests += 1
    if faults.settings.down:
        request.transport.abort()  # as a platform that is down: no answer at all
        raise web.HTTPServiceUnavailable()
    if faults.settings.delay_ms:
        await asyncio.sleep(faults.settings.delay_ms / 1000)
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    status = faults.failure_status(str(body.get("aggregate_id")) if isinstance(body, dict) else None)
    if status is not None:
        state.injected_failures += 1
        headers = {"Retry-After": faults.settings.retry_after} if faults.settings.retry_after else None
        return web.json_response({"error": "injected failure"}, status=status, headers=headers)
    try:
        request.app[CHECK].verify({name.lower(): value for name, value in request.headers.items()}, raw)
    except DeliveryRefused as refused:
        state.refused += 1
        return web.json_response({"error": str(refused)}, status=401)
    key = request.headers.get("Idempotency-Key")
    if not key:
        return web.json_response({"error": "Idempotency-Key header is required"}, status=400)
    if body is None:
        return web.json_response({"error": "body is not JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "body must be a JSON object"}, status=400)
    if state.receive(key, body, verified=request.app[CHECK].signed, traceparent=request.headers.get("traceparent")):
        return web.json_response({"status": "accepted"}, status=201)
    return web.json_response({"status": "duplicate", "detail": "already received"}, status=409)


async def list_events(request: web.Request) -> web.Response:
    """Received events in arrival order (`?aggregate_id=` for one order)."""
    return web.json_response(request.app[STATE].listing(request.query.get("aggregate_id")))


async def stats(request: web.Request) -> web.Response:
    """Counters and gaps."""
    return web.json_response(request.app[STATE].stats())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAULTS].describe())


async def put_faults(request: web.Request) -> web.Response:
    """Set the faults to show from now on (the whole set; omitted fields go back to their defaults)."""
    try:
        settings = FaultSettings.model_validate(await request.json())
    except (json.JSONDecodeError, ValidationError) as error:
        return web.json_response({"error": str(error)}, status=400)
    request.app[FAULTS].configure(settings)
    return web.json_response(request.app[FAULTS].describe())


async def reset(request: web.Request) -> web.Response:
    """Forget everything received and show no faults."""
    request.app[STATE].clear()
    request.app[FAULTS].configure(FaultSettings())
    return web.json_response({"status": "reset"})
