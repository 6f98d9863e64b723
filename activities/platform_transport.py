"""The HTTP transport under the relay's httpx requests: httpx's transport API on a lean aiohttp session.

httpx stays the API (requests and responses are `httpx.Request` / `httpx.Response`, failures are
httpx's exception tree); underneath, one aiohttp session does the I/O because it costs a third of
httpx's own transport per request (bench/relay.py). The session is lean on purpose: no cookie jar,
no decompression (a compressed answer stays compressed: a gzip bomb is only bytes we never read),
no redirects, and a response body is only read as far as the caller asks; an unread rest closes
the connection instead of being drained.
"""

from collections.abc import AsyncIterator
from typing import Literal

import aiohttp
import httpx
import yarl

TransportKind = Literal["aiohttp", "httpx"]


def create_transport(kind: TransportKind, *, max_connections: int) -> httpx.AsyncBaseTransport:
    """The transport the relay's requests go through: the lean aiohttp one, or httpx's own."""
    if kind == "aiohttp":
        return AiohttpTransport(max_connections=max_connections)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncHTTPTransport(limits=limits)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport on one aiohttp session, opened on first use inside the running loop."""

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Requests built from one template share one httpx.URL: convert it to aiohttp's URL once.
        self._last_url: tuple[httpx.URL, yarl.URL] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            response = await session.request(
                request.method,
                self._url_of(request.url),
                headers=request.headers.multi_items(),
                data=request.content,
                allow_redirects=False,
            )
        except aiohttp.ClientError as failure:
            raise _as_httpx_error(failure, request) from failure
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_AiohttpBody(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None),  # the caller's deadline covers connect to last byte
        )
        return self._session

    def _url_of(self, url: httpx.URL) -> yarl.URL:
        if self._last_url is None or self._last_url[0] is not url:
            self._last_url = (url, yarl.URL(str(url), encoded=True))
        return self._last_url[1]


class _AiohttpBody(httpx.AsyncByteStream):
    """A response body read from the socket only as far as it is iterated."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._response.content.readany():
                yield chunk
        except aiohttp.ClientError as failure:
            raise _as_httpx_error(failure, self._request) from failure

    async def aclose(self) -> None:
        if self._response.content.is_eof():
            self._response.release()  # the connection goes back to the pool
        else:
            self._response.close()  # a body left unread: drop the connection rather than drain it


def _as_httpx_error(failure: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception that says what the aiohttp failure was."""
    if isinstance(failure, aiohttp.ClientConnectorError):
        return httpx.ConnectError(f"cannot connect: {failure}", request=request)
    if isinstance(failure, aiohttp.ServerDisconnectedError):  # a connection error, not a malformed answer
        return httpx.ReadError("the platform closed the connection without an answer", request=request)
    if isinstance(failure, aiohttp.ClientResponseError):  # an answer aiohttp's parser refused
        return httpx.RemoteProtocolError(f"malformed answer: {failure.message}", request=request)
    if isinstance(failure, aiohttp.ClientPayloadError):
        return httpx.ReadError(f"broken body: {failure}", request=request)
    if isinstance(failure, aiohttp.ClientOSError):
        return httpx.NetworkError(f"network error: {failure}", request=request)
    return httpx.TransportError(f"{type(failure).__name__}: {failure}", request=request)
