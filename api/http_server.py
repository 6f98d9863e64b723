"""Serving the API with uvicorn (httptools), with limits on request heads that uvicorn does not have.

httptools accepts request lines and headers of any size and number, uvicorn has no option to
limit them (only its h11 protocol has one, for size alone, answered 400), and it gives a client
that trickles its request head all the time it wants. Here the connection is answered 431 and
closed once the head passes MAX_REQUEST_HEADER_BYTES or MAX_REQUEST_HEADERS, and 408 and closed
when the head is not complete REQUEST_HEADER_TIMEOUT_SECONDS after its first byte (or after the
connection opened). Bodies are guarded in the app (api/request_guard.py).

Where the head ends is the parser's to say, never ours: the bytes of a write count as head only
when the parser, having read them, still waits for the end of the head; a head the parser completed
is measured from what it parsed (request line and header lines). So a head whose last line and
blank line arrive in one write with the body is measured as the head it is.
"""

from asyncio import TimerHandle
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from sneaker_orders.settings import Settings

# What the parser does not hand over of a head: the request line's spaces, version and line end, and
# the blank line; each header line's ": " and line end.
REQUEST_LINE_FRAME = len(b"  HTTP/1.1\r\n\r\n")
HEADER_LINE_FRAME = len(b": \r\n")


@dataclass(frozen=True)
class RequestHeadLimits:
    """How large, how many lines and how slow a request head may be."""

    max_bytes: int
    max_headers: int
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "RequestHeadLimits":
        return cls(
            settings.max_request_header_bytes, settings.max_request_headers, settings.request_header_timeout_seconds
        )


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that breaks a limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing oversized request heads and cutting off slow ones."""

    limits: RequestHeadLimits  # set on the subclass made by guarded_http_protocol

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_bytes: int | None = 0
        self._header_lines = 0
        self._ends_parsed = 0  # heads and messages the parser saw end on this connection
        self._refusal: tuple[int, str] | None = None
        # A connection that opens and sends nothing is cut off like a slow head.
        self._head_timer: TimerHandle | None = self.loop.call_later(self.limits.timeout_seconds, self._head_too_slow)

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.timeout_seconds, self._head_too_slow)
        ends_before = self._ends_parsed
        super().data_received(data)
        # The parser has read `data`: if no head nor message ended in it and a head is open, all of it was head.
        if self._ends_parsed == ends_before and self._head_bytes is not None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_bytes:
                self._refuse(431, f"request line and headers are limited to {self.limits.max_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self.limits.max_headers:
            self._refusal = (431, f"requests are limited to {self.limits.max_headers} header lines")
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._ends_parsed += 1
        self._stop_head_timer()
        head = len(self.parser.get_method()) + len(self.url) + REQUEST_LINE_FRAME
        head += sum(len(name) + len(value) + HEADER_LINE_FRAME for name, value in self.headers)
        if head > self.limits.max_bytes:
            self._refusal = (431, f"request line and headers are limited to {self.limits.max_bytes} bytes")
            raise _HeadRefused
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._ends_parsed += 1
        self._head_bytes = 0  # the next request's head; its timer starts with its first byte

    def send_400_response(self, msg: str) -> None:
        # The parser stops on an exception from a callback and reports it as a malformed request.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._head_bytes is not None and not self.transport.is_closing():
            self._refuse(408, f"the request head was not complete within {self.limits.timeout_seconds:g} s")

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str) -> None:
        self.logger.warning("refused a request from %s: %s", self.client, reason)
        self._stop_head_timer()
        body = reason.encode()
        phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self.transport.close()


def guarded_http_protocol(limits: RequestHeadLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn builds per connection, with `limits`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config(app, *, host: str, port: int, **options) -> uvicorn.Config:
    """The uvicorn configuration of the API app `app` (built by api.app.create_app, settings in its state)."""
    settings: Settings = app.state.settings
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_http_protocol(RequestHeadLimits.from_settings(settings)),
        # Idle keep-alive connections are closed after this long (uvicorn's own timer).
        timeout_keep_alive=5,
        **options,
    )
