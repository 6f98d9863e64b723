"""Serving the API with uvicorn (httptools), with limits on requests that uvicorn does not have.

httptools accepts request lines and headers of any size and number, uvicorn has no option to
limit them (only its h11 protocol has one, for size alone, answered 400), and it gives a client
that trickles its request all the time it wants. Here the connection is answered 431 and
closed once the head passes MAX_REQUEST_HEADER_BYTES or MAX_REQUEST_HEADERS, and 408 and closed
when the head is not complete REQUEST_HEADER_TIMEOUT_SECONDS after its first byte (or after the
connection opened), or the body REQUEST_BODY_TIMEOUT_SECONDS after the head (problem+json
REQUEST_TIMEOUT; a request answered already is closed without a second answer). Body sizes are
guarded in the app (api/request_guard.py).

A deadline is armed only for a head or a body that a write left incomplete: nearly every request
arrives whole in one write and costs no timer (a timer armed and cancelled per request was a few
per cent of a sold-out refusal's CPU).

Where the head ends is the parser's to say, never ours: the bytes of a write count as head only
when the parser, having read them, still waits for the end of the head; a head the parser completed
is measured from what it parsed (request line and header lines). So a head whose last line and
blank line arrive in one write with the body is measured as the head it is.
"""

from asyncio import TimerHandle
from dataclasses import dataclass

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.problems import PROBLEM_MEDIA_TYPE, problem_response
from sneaker_orders.settings import Settings

# What the parser does not hand over of a head: the request line's spaces, version and line end, and
# the blank line; each header line's ": " and line end.
REQUEST_LINE_FRAME = len(b"  HTTP/1.1\r\n\r\n")
HEADER_LINE_FRAME = len(b": \r\n")


@dataclass(frozen=True)
class RequestLimits:
    """How large, how many lines and how slow a request head may be, and how slow its body."""

    max_bytes: int
    max_headers: int
    timeout_seconds: float
    body_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> "RequestLimits":
        return cls(
            settings.max_request_header_bytes,
            settings.max_request_headers,
            settings.request_header_timeout_seconds,
            settings.request_body_timeout_seconds,
        )


class _HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a head that breaks a limit."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing oversized request heads and cutting off slow heads and bodies."""

    limits: RequestLimits  # set on the subclass made by guarded_http_protocol

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_bytes: int | None = 0
        self._head_begun = False  # the parser has begun a request head and not ended it
        self._body_open = False  # a request's head has ended and its message has not
        self._body_timer: TimerHandle | None = None
        self._header_lines = 0
        self._ends_parsed = 0  # heads and messages the parser saw end on this connection
        self._refusal: tuple[int, str] | None = None
        # A connection that opens and sends nothing is cut off like a slow head.
        self._head_timer: TimerHandle | None = self.loop.call_later(self.limits.timeout_seconds, self._head_too_slow)

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        ends_before = self._ends_parsed
        super().data_received(data)
        if self.transport.is_closing():
            return
        # The parser has read `data`: if no head nor message ended in it and a head is open, all of it was head.
        if self._ends_parsed == ends_before and self._head_bytes is not None:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_bytes:
                self._refuse(431, f"request line and headers are limited to {self.limits.max_bytes} bytes")
                return
        # What this write left incomplete has until its deadline, counted from now (its first bytes' arrival).
        if self._head_begun and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.timeout_seconds, self._head_too_slow)
        if self._body_open and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout_seconds, self._body_too_slow)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True
        self._header_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > self.limits.max_headers:
            self._refusal = (431, f"requests are limited to {self.limits.max_headers} header lines")
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._head_begun = False
        self._ends_parsed += 1
        self._stop_head_timer()
        head = len(self.parser.get_method()) + len(self.url) + REQUEST_LINE_FRAME
        head += sum(len(name) + len(value) + HEADER_LINE_FRAME for name, value in self.headers)
        if head > self.limits.max_bytes:
            self._refusal = (431, f"request line and headers are limited to {self.limits.max_bytes} bytes")
            raise _HeadRefused
        super().on_headers_complete()
        self._body_open = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._ends_parsed += 1
        self._body_open = False
        self._stop_body_timer()
        self._head_bytes = 0  # the next request's head; its timer starts with its first byte

    def send_400_response(self, msg: str) -> None:
        # The parser stops on an exception from a callback and reports it as a malformed request.
        if self._refusal is not None:
            self._refuse(*self._refusal)
        else:
            super().send_400_response(msg)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        # A head begun, or none at all yet on a new connection (the timer armed when it opened).
        if (self._head_begun or self._ends_parsed == 0) and not self.transport.is_closing():
            self._refuse(408, f"the request head was not complete within {self.limits.timeout_seconds:g} s")

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if not self._body_open or self.transport.is_closing():
            return
        reason = f"the request body took longer than {self.limits.body_timeout_seconds:g} s to arrive"
        self.logger.warning("refused a request from %s: %s", self.client, reason)
        self._stop_head_timer()
        if self.cycle is None or not self.cycle.response_started:  # uvicorn's: has the app begun its answer?
            problem = problem_response(408, "REQUEST_TIMEOUT", reason)
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n\r\n%s" % (PROBLEM_MEDIA_TYPE.encode(), len(problem.body), problem.body)
            )
        self.transport.close()

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _refuse(self, status: int, reason: str) -> None:
        self.logger.warning("refused a request from %s: %s", self.client, reason)
        self._stop_head_timer()
        self._stop_body_timer()
        body = reason.encode()
        phrase = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self.transport.close()


def guarded_http_protocol(limits: RequestLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn builds per connection, with `limits`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


def uvicorn_config(app, *, host: str, port: int, **options) -> uvicorn.Config:
    """The uvicorn configuration of the API app `app` (built by api.app.create_app, settings in its state)."""
    settings: Settings = app.state.settings
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_http_protocol(RequestLimits.from_settings(settings)),
        # Idle keep-alive connections are closed after this long (uvicorn's own timer).
        timeout_keep_alive=5,
        **options,
    )
