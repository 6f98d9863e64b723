"""A destination (an external data platform) over HTTP: one POST per event, and whatever happens, a readable account
of it.

`PlatformClient.send` never raises for what the platform, the network or the parser did: a
malformed status line, an oversized header, a body that drips or never ends, a timeout, even a bug
of ours in reading the answer all become that event's attempt with a readable error. One deadline
(RELAY_HTTP_TIMEOUT_SECONDS) covers connect to last byte, and at most `max_body_bytes` of an answer
are ever read (only of a non-2xx answer, for its error message).
"""

import asyncio
import base64
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from activities.delivery_rules import retry_after_seconds
from db.outbox.claims import LeasedEvent
from sneaker_orders.destinations import DEFAULT_DESTINATION, Destination
from sneaker_orders.redaction import without_credentials

SCHEMA_VERSION = 1
ERROR_TEXT_CHARACTERS = 200


@dataclass(frozen=True)
class AttemptFacts:
    """What happened when one event was sent: the answer, or why there was none."""

    event_id: str
    attempted_at: datetime
    duration_ms: float
    http_status: int | None
    error: str | None
    retry_after_seconds: float | None


@dataclass(frozen=True)
class PlatformEndpoint:
    """Where one destination's events go and how requests prove they are ours; credentials never leave this object.

    `name` is the destination's (breakers, metrics and the CLI use it); `address` its URL without credentials."""

    events_url: httpx.URL
    name: str
    address: str
    fixed_headers: tuple[tuple[bytes, bytes], ...]
    signer: Webhook | None

    @classmethod
    def configure(
        cls,
        base_url: str,
        *,
        name: str = DEFAULT_DESTINATION,
        token: str | None = None,
        signing_secret: str | None = None,
    ) -> "PlatformEndpoint":
        """`POST {base_url}/events` with a bearer `token` (or the URL's user and password), signed if given a secret."""
        base = httpx.URL(base_url)
        headers = [(b"content-type", b"application/json"), (b"accept-encoding", b"identity")]
        if token:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        elif base.userinfo:
            userinfo = base64.b64encode(f"{base.username}:{base.password}".encode())
            headers.append((b"authorization", b"Basic " + userinfo))
        address = without_credentials(base_url).rstrip("/")
        return cls(
            events_url=httpx.URL(address + "/events"),
            name=name,
            address=address,
            fixed_headers=tuple(headers),
            signer=Webhook(signing_secret) if signing_secret else None,
        )

    @classmethod
    def of(cls, destination: Destination) -> "PlatformEndpoint":
        """The endpoint of a configured destination (Settings.destinations())."""
        token, secret = destination.token, destination.signing_secret
        return cls.configure(
            destination.url,
            name=destination.name,
            token=token.get_secret_value() if token else None,
            signing_secret=secret.get_secret_value() if secret else None,
        )

    def request_for(self, event: LeasedEvent, traceparent: str | None = None) -> httpx.Request:
        """The request that delivers `event`: the template's URL and headers, the event's key, body and signature,
        and the attempt's span as `traceparent` when tracing."""
        body = platform_body(event)
        headers = [*self.fixed_headers, (b"idempotency-key", event.event_id.encode())]
        if traceparent is not None:
            headers.append((b"traceparent", traceparent.encode()))
        if self.signer is not None:
            now = datetime.now(UTC)
            signature = self.signer.sign(event.event_id, now, body.decode())
            headers += [
                (b"webhook-id", event.event_id.encode()),
                (b"webhook-timestamp", str(int(now.timestamp())).encode()),
                (b"webhook-signature", signature.encode()),
            ]
        return httpx.Request("POST", self.events_url, headers=headers, content=body)


def platform_body(event: LeasedEvent) -> bytes:
    """The JSON body the platform receives for `event`; the stored payload goes in as stored."""
    return (
        f'{{"schema_version": {SCHEMA_VERSION}, "event_id": "{event.event_id}", '
        f'"event_type": {json.dumps(event.event_type)}, "aggregate_type": {json.dumps(event.aggregate_type)}, '
        f'"aggregate_id": {json.dumps(event.aggregate_id)}, "sequence": {event.sequence}, '
        f'"occurred_at": "{event.occurred_at.isoformat()}", "payload": {event.payload_json}}}'
    ).encode()


class PlatformClient:
    """Sends events to the platform through an httpx transport, one deadline and a bounded read per request."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        endpoint: PlatformEndpoint,
        *,
        timeout_seconds: float,
        max_body_bytes: int = 4096,
    ) -> None:
        self._transport = transport
        self.endpoint = endpoint
        self._timeout = timeout_seconds
        self._max_body_bytes = max_body_bytes

    async def send(self, event: LeasedEvent, traceparent: str | None = None) -> AttemptFacts:
        """Send one event (as part of the trace `traceparent`); never raises for what the platform, the network or
        the parser did."""
        attempted_at = datetime.now(UTC)
        started = time.perf_counter()
        status, error, retry_after = None, None, None
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._transport.handle_async_request(self.endpoint.request_for(event, traceparent))
                try:
                    status = response.status_code
                    if not 200 <= status < 300:
                        retry_after = retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC))
                        error = f"HTTP {status}: {await self._error_text(response)}"
                finally:
                    await response.aclose()
        except TimeoutError:
            error = _after(status, f"no complete answer within {self._timeout:g}s")
        except httpx.ProtocolError as failure:  # an answer that is not HTTP as it should be, or none at all
            what = str(failure) or type(failure).__name__
            if what.startswith("Server disconnected"):  # httpx's own transport: the platform closed the connection
                error = _after(status, "connection error: the platform closed the connection without an answer")
            else:
                error = _after(status, what if what.startswith("malformed answer") else f"malformed answer: {what}")
        except httpx.ReadError as failure:  # the connection closed or broke while we waited for the answer
            error = _after(status, f"connection error: {failure or type(failure).__name__}")
        except httpx.TransportError as failure:
            error = _after(
                status, f"{'no answer' if status is None else 'broken answer'}: {failure or type(failure).__name__}"
            )
        except Exception as failure:  # whatever it was, it is this event's attempt
            error = _after(status, f"unusable answer: {type(failure).__name__}: {failure}")
        duration_ms = (time.perf_counter() - started) * 1000
        return AttemptFacts(event.event_id, attempted_at, duration_ms, status, _printable(error), retry_after)

    async def _error_text(self, response: httpx.Response) -> str:
        """The start of an error answer's body, as text; a compressed body is not decompressed."""
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return f"({encoding}-encoded body, not read)"
        received = bytearray()
        async with contextlib.aclosing(response.aiter_raw()) as chunks:
            async for chunk in chunks:
                received += chunk
                if len(received) >= self._max_body_bytes:
                    break
        return bytes(received[: self._max_body_bytes]).decode("utf-8", errors="replace")


def _after(status: int | None, what: str) -> str:
    return what if status is None else f"HTTP {status}, then {what}"


def _printable(error: str | None) -> str | None:
    """One short line of printable text, whatever bytes the platform sent."""
    if error is None:
        return None
    flat = "".join(character if character.isprintable() else " " for character in error)
    return " ".join(flat.split())[:ERROR_TEXT_CHARACTERS] or "(empty)"
