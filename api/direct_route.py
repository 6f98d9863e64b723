"""A route whose endpoint is an ASGI app, documented by FastAPI like any other, and the door that brings
the route's own requests to it past FastAPI's routing.

For the hottest request (`POST /orders`). The endpoint reads what it needs from the request once and
sends its answer itself, so FastAPI's per-request work (dependency solving, body parsing, response
validation, a Request and a Response object) is left out; its OpenAPI operation (body, headers,
security, answers) is declared with `openapi_extra` and `responses`. The door skips the routing too
(matching every route, FastAPI's exit stacks): a request for the route's exact path and method goes
to the same endpoint through the same middleware (body guard, timing) and the same problem handlers
as any request, only not through the router.
"""

import inspect
from collections.abc import Callable

from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp


def asgi_endpoint(endpoint: ASGIApp) -> ASGIApp:
    """`endpoint(scope, receive, send)` as a DirectRoute's endpoint: FastAPI reads no parameter of it.

    Its operation (body, headers, security) is the route's `openapi_extra`, not its signature.
    """
    endpoint.__signature__ = inspect.Signature()
    return endpoint


class DirectRoute(APIRoute):
    """An APIRoute that runs its endpoint, an ASGI app (`asgi_endpoint`), as it is (a FastAPI route class)."""

    def __init__(self, path: str, endpoint: ASGIApp, **kwargs) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = endpoint

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
        self.direct = middleware(_answering_problems(route.endpoint, handlers))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] in self.methods:
            scope["route"] = self.route
            await self.direct(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _answering_problems(endpoint: ASGIApp, handlers: dict) -> ASGIApp:
    """`endpoint`, whose exceptions are answered by Starlette's ExceptionMiddleware with `handlers`.

    The middleware is entered only when the endpoint raised (an endpoint that sends nothing before it has
    its whole answer): a request answered as expected pays for no exception layer.
    """

    async def app(scope, receive, send) -> None:
        try:
            await endpoint(scope, receive, send)
        except Exception as error:
            await ExceptionMiddleware(_raising(error), handlers=handlers)(scope, receive, send)

    return app


def _raising(error: Exception) -> ASGIApp:
    async def app(scope, receive, send) -> None:
        raise error

    return app
