"""A hostile platform of the suite's own: a raw asyncio server on loopback that answers each event as its order says.

An event of order `bad-status-line`, `oversized-header`, ... (or `silent#7`: what precedes `#`)
gets that misbehaviour; any other event a plain `201`. Every request is counted by event id, so a
test can tell which events were sent how often.
"""

import asyncio
import json
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import cache

GIBIBYTE = 1 << 30
CHUNK = b"x" * (1 << 16)


@cache
def gzip_bomb(inflated_bytes: int = GIBIBYTE // 2) -> bytes:
    """About half a megabyte of gzip that inflates to `inflated_bytes` of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(inflated_bytes // len(zeros))) + compressor.flush()


class HostilePlatform:
    """The server: started on a free loopback port by `start`, stopped by `stop`."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> str:
        gzip_bomb()  # made before the first request, not while it waits
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self._server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(asyncio.current_task())
        try:
            while body := await _read_request(reader):
                self.requests[body["event_id"]] = self.requests[body["event_id"]] + 1
                answer = ANSWERS.get(body["aggregate_id"].split("#")[0], _created)
                if not await answer(writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the relay hung up, as it should on most of these
        finally:
            self._connections.discard(asyncio.current_task())
            writer.close()


async def _read_request(reader: asyncio.StreamReader) -> dict | None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return json.loads(await reader.readexactly(length))


# Each answer writes its misbehaviour; True if the connection may serve another request.
async def _created(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    await writer.drain()
    return True


async def _bad_status_line(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 2x1 Hello there\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return False


async def _oversized_header(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 20_000 + b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    return False


async def _unreadable_retry_after(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: \xb2\r\nContent-Length: 4\r\n\r\nbusy")
    await writer.drain()
    return True


async def _huge_retry_after(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 99999999999999\r\nContent-Length: 4\r\n\r\nbusy")
    await writer.drain()
    return True


async def _silent(writer: asyncio.StreamWriter) -> bool:
    await asyncio.Event().wait()  # the request was read; no answer ever comes
    return False


async def _drip(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\n")
    while True:  # one byte of a header every half second, never finishing
        writer.write(b"X")
        await writer.drain()
        await asyncio.sleep(0.5)


async def _endless_body(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
    while True:
        writer.write(chunk)
        await writer.drain()


async def _gigabyte_body(writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % GIBIBYTE)
    for _ in range(GIBIBYTE // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()
    return False


async def _hang_up(writer: asyncio.StreamWriter) -> bool:
    return False  # the request read, the connection closed without a byte of answer


async def _gzip_bomb(writer: asyncio.StreamWriter) -> bool:
    bomb = gzip_bomb()
    writer.write(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(bomb), bomb)
    )
    await writer.drain()
    return True


ANSWERS: dict[str, Callable[[asyncio.StreamWriter], Awaitable[bool]]] = {
    "silent": _silent,
    "bad-status-line": _bad_status_line,
    "oversized-header": _oversized_header,
    "unreadable-retry-after": _unreadable_retry_after,
    "huge-retry-after": _huge_retry_after,
    "drip": _drip,
    "endless-body": _endless_body,
    "gigabyte-body": _gigabyte_body,
    "gzip-bomb": _gzip_bomb,
    "hang-up": _hang_up,
}
# Every misbehaviour, named by the order id that asks for it.
MISBEHAVIOURS = tuple(name for name in ANSWERS if name != "silent")  # each answers at last, somehow
