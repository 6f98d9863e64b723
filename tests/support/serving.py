"""Serving an ASGI app with a real uvicorn on a free loopback port, for the length of a test or session."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.http_server import uvicorn_config
from tests.support.polling import wait_until


@contextmanager
def serve(app) -> Iterator[str]:
    """Run `app` (the API, as `sneaker-orders api` serves it) in a background thread; yields its base URL."""
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="server-under-test", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), timeout=20, what="the server to start")
    if not server.started:
        raise RuntimeError("the server under test failed to start")
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
