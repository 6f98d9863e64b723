"""The keys of AUTH_JWKS_URL, fetched calmly: a slow or hostile identity provider costs only new-key tokens.

PyJWT's PyJWKClient fetches under one lock, once per unknown `kid`, with blocking I/O: tokens naming
made-up key ids made every token wait for fetch after fetch, known key or not. Here instead:
- a token whose key is known is answered from memory and never waits for a fetch (a key set older
  than its lifespan is refreshed in the background);
- the key set is fetched at most once per `refresh_seconds`, whatever the tokens say, and every token
  that needs the fetch in flight shares it;
- a fetch ends within `timeout_seconds` (connection, answer and body together), so a token with a new
  key waits at most that long;
- a `kid` the provider does not list is remembered as unknown for a while, and refused at once.
PyJWT parses and checks the keys (PyJWKSet); httpx fetches them (no redirects, a bounded body).
"""

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass, field

import httpx
import jwt
from jwt import PyJWK, PyJWKSet

from sneaker_orders.redaction import without_credentials

log = logging.getLogger(__name__)

# A key set this old is refreshed (in the background: tokens keep using it meanwhile).
KEY_SET_LIFESPAN_SECONDS = 300
# A kid missing from the provider's key set is refused without asking again for this long.
UNKNOWN_KID_SECONDS = 300
# At most this many unknown kids are remembered (the oldest are forgotten first), each at most this long.
UNKNOWN_KIDS_KEPT = 10_000
KID_MAX_LENGTH = 256
# A key set is a few kilobytes; a provider sending more is not answering with a key set.
KEY_SET_MAX_BYTES = 1_000_000


class SigningKeysUnavailable(Exception):
    """The identity provider's keys cannot be had now: not the token's fault."""


class UnknownSigningKey(Exception):
    """The token names a key the identity provider does not list."""


@dataclass
class JwksKeys:
    """The signing keys of one JWKS endpoint, by kid, kept in memory and refreshed at a calm pace."""

    url: str
    timeout_seconds: float = 5.0
    refresh_seconds: float = 30.0
    # Built once, here: loading the CA certificates takes tens of milliseconds, too long for the event loop.
    _tls: ssl.SSLContext = field(default_factory=httpx.create_ssl_context, repr=False)
    _keys: dict[str, PyJWK] = field(default_factory=dict, repr=False)
    _loaded_at: float | None = field(default=None, repr=False)
    _fetch_started_at: float | None = field(default=None, repr=False)
    _fetch: asyncio.Task | None = field(default=None, repr=False)
    # Why the latest fetch failed; None once one succeeded.
    _failure: str | None = field(default=None, repr=False)
    _unknown_until: dict[str, float] = field(default_factory=dict, repr=False)

    async def key_for(self, kid: object) -> PyJWK:
        """The key named `kid`; raises UnknownSigningKey, or SigningKeysUnavailable when the keys cannot be had."""
        now = time.monotonic()
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is not None:
            if now - self._loaded_at >= KEY_SET_LIFESPAN_SECONDS:
                self._start_fetch(now)  # not awaited: the known key answers now
            return key
        if not isinstance(kid, str) or not 1 <= len(kid) <= KID_MAX_LENGTH:
            raise UnknownSigningKey("the token names no usable key id (kid)")
        if self._unknown_until.get(kid, 0.0) > now:
            raise UnknownSigningKey(f"no key {kid!r} among the identity provider's keys")
        fetch = self._fetch_in_flight() or self._start_fetch(now)
        if fetch is not None:
            await asyncio.shield(fetch)  # ends within timeout_seconds of its start; never raises
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._failure is not None:
            raise SigningKeysUnavailable(f"the identity provider's keys cannot be fetched: {self._failure}")
        self._remember_unknown(kid, now)
        raise UnknownSigningKey(f"no key {kid!r} among the identity provider's keys")

    def _fetch_in_flight(self) -> asyncio.Task | None:
        fetch = self._fetch
        if fetch is None or fetch.done() or fetch.get_loop() is not asyncio.get_running_loop():
            return None
        return fetch

    def _start_fetch(self, now: float) -> asyncio.Task | None:
        """A new fetch of the key set, unless one started less than refresh_seconds ago."""
        if self._fetch_in_flight() is not None:
            return None
        if self._fetch_started_at is not None and now - self._fetch_started_at < self.refresh_seconds:
            return None
        self._fetch_started_at = now
        self._fetch = asyncio.get_running_loop().create_task(self._refresh(), name="jwks-fetch")
        return self._fetch

    async def _refresh(self) -> None:
        """Fetch and install the key set; on failure keep the keys there are and note why."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                keys = _signing_keys(await self._download())
        except (TimeoutError, httpx.HTTPError, ValueError, jwt.PyJWTError) as failure:
            reason = f"no answer within {self.timeout_seconds:g} s" if isinstance(failure, TimeoutError) else failure
            self._failure = without_credentials(f"{self.url}: {reason}")
            log.warning("could not fetch the keys of customer tokens from %s", self._failure)
            return
        self._keys, self._loaded_at, self._failure = keys, time.monotonic(), None
        for kid in keys.keys() & self._unknown_until.keys():
            del self._unknown_until[kid]

    async def _download(self) -> object:
        async with (
            httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=False, verify=self._tls) as client,
            client.stream("GET", self.url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > KEY_SET_MAX_BYTES:
                    raise ValueError(f"the key set is larger than {KEY_SET_MAX_BYTES} bytes")
        return json.loads(body)

    def _remember_unknown(self, kid: str, now: float) -> None:
        if len(self._unknown_until) >= UNKNOWN_KIDS_KEPT:
            del self._unknown_until[next(iter(self._unknown_until))]
        self._unknown_until[kid] = now + UNKNOWN_KID_SECONDS


def _signing_keys(document: object) -> dict[str, PyJWK]:
    """The signing keys of a JWKS document by kid, as PyJWT's key client selects them."""
    if not isinstance(document, dict):
        raise ValueError("the JWKS endpoint did not answer with a JSON object")
    keys = {key.key_id: key for key in PyJWKSet.from_dict(document).keys if key.public_key_use in ("sig", None)}
    keys.pop(None, None)
    if not keys:
        raise ValueError("the JWKS endpoint lists no signing key with a kid")
    return keys
