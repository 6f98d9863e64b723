"""Pure ASGI guard of request bodies: none larger than MAX_REQUEST_BYTES.

The guard reads the body itself before the app sees any of it: a declared Content-Length over the
limit is refused without reading a byte, a chunked body as soon as it passes the limit. So no body
is ever parsed, or held in memory, beyond MAX_REQUEST_BYTES. Whatever the client still sends after
the answer is discarded by the server as it arrives. A body slower than REQUEST_BODY_TIMEOUT_SECONDS
is cut off by the HTTP protocol (api/http_server.py): the read here then ends with the disconnect.
"""

from fastapi.responses import JSONResponse

from api.problems import problem_response


class RequestBodyGuard:
    """413 REQUEST_TOO_LARGE over `max_bytes`."""

    def __init__(self, app, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await read_guarded_body(scope, receive, max_bytes=self.max_bytes)
        if isinstance(body, bytes):
            await self.app(scope, _replaying(body, receive), send)
        elif body is not None:
            await body(scope, receive, send)


async def read_guarded_body(scope, receive, *, max_bytes: int) -> bytes | JSONResponse | None:
    """The whole request body; or the problem refusing it (413) to send instead; None when the client left."""
    declared = _content_length(scope)
    if declared is not None and declared > max_bytes:
        return _too_large(max_bytes)
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None  # the client is gone (or was cut off as too slow); nobody to answer
        chunk = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            return _too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_bytes: int) -> JSONResponse:
    return problem_response(
        413, "REQUEST_TOO_LARGE", f"request bodies are limited to {max_bytes} bytes; nothing was read"
    )


def _content_length(scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _replaying(body: bytes, receive):
    """A `receive` that gives the app the whole body once, then whatever the server says next (a disconnect)."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
