"""A route documented by FastAPI like any other, whose endpoint takes the request and returns its response itself,
and the door that brings the route's own requests to it past FastAPI's routing.

For the hottest request (`POST /orders`). The endpoint reads and validates what it needs once, so
FastAPI's per-request work (dependency solving, body parsing, response validation) is left out; its
OpenAPI operation (body, headers, security) is declared with `openapi_extra`. The door skips the
routing too (matching every route, FastAPI's exit stacks): a request for the route's exact path and
method goes to the same endpoint through the same middleware (body guard, timing) and the same
problem handlers as any request, only not through the router.
"""

from collections.abc import Callable

from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp


class DirectRoute(APIRoute):
    """An APIRoute whose handler is its endpoint, `await endpoint(request)` (FastAPI's custom route class hook)."""

    def get_route_handler(self):
        return self.endpoint


class DirectDoor:
    """Pure ASGI middleware: the requests of `route` (its path and methods) go straight to its endpoint."""

    def __init__(
        self, app: ASGIApp, *, route: DirectRoute, exception_handlers: dict, middleware: Callable[[ASGIApp], ASGIApp]
    ) -> None:
        # `middleware` wraps an ASGI app in the app's own middleware; errors the handlers do not map (500) go on
        # to the server error middleware outside, as from any route.
        self.app, self.route, self.path, self.methods = app, route, route.path, route.methods
        handlers = {kind: handler for kind, handler in exception_handlers.items() if kind not in (500, Exception)}
        self.direct = middleware(ExceptionMiddleware(_request_response(route.endpoint), handlers=handlers))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] in self.methods:
            scope["route"] = self.route
            await self.direct(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _request_response(endpoint: Callable) -> ASGIApp:
    """The endpoint as an ASGI app: Starlette's `request_response` less its second exception layer.

    `request_response` wraps the endpoint in the handlers' layer again (for routes, which sit behind the
    router); here ExceptionMiddleware, with the same handlers, is right outside, so one layer does.
    """

    async def app(scope, receive, send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
