"""A route documented by FastAPI like any other, whose endpoint takes the request and returns its response itself.

For the hottest request (`POST /orders`): FastAPI's per-request work (dependency solving, body
parsing and response validation) is left out, because the endpoint reads and validates what it
needs once; routing, the middleware and the problem handlers are the app's, as for every route.
The endpoint's OpenAPI operation (body, headers, security) is declared with `openapi_extra`.
"""

from fastapi.routing import APIRoute


class DirectRoute(APIRoute):
    """An APIRoute whose handler is its endpoint, `await endpoint(request)` (FastAPI's custom route class hook)."""

    def get_route_handler(self):
        return self.endpoint
