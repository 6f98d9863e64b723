"""An open-loop HTTP load generator, light enough that its own lateness stays out of the server's figures.

Request n is due at n / rate seconds after the start, whatever the answers. It runs in a process of
its own (spawned), on uvloop, with requests built before the start (the exact bytes to write), a
fixed pool of keep-alive connections opened before the start, and httptools (C) reading the answers:
no HTTP client library, no task per request. A due request goes out at once on a free connection, or
waits in one queue, first come first served, for the next connection a previous answer frees.

Per request it records when it was due, when the generator got round to it (`dispatched`: the
generator's own lateness, its event loop being late), when it was written (after any wait for a
connection: the server's doing, as the answers it owes hold the connections) and when its answer
was complete. Latency counts from the due time, so everything late is charged to the server unless
the generator's lateness, printed apart, says otherwise. The generator's CPU is measured in its process.
"""

import asyncio
import multiprocessing
import time
from collections import deque
from dataclasses import dataclass

# Seconds between opening the connections and the first request being due.
START_DELAY_SECONDS = 0.2
# How often the generator notes its CPU (when it sends requests; nothing is sent between)
CPU_NOTE_SECONDS = 0.02


@dataclass(frozen=True)
class OpenLoopAnswers:
    """What an open-loop run saw, request by request (seconds from the run's start, 0 status: no answer)."""

    due: list[float]
    dispatched: list[float]
    written: list[float]
    done: list[float]
    statuses: list[int]
    bodies: list[bytes]
    generator_cpu_seconds: float
    # The run's start (perf_counter, the same clock in every process of the machine) and the generator's
    # CPU seconds as it went: (seconds from the start, CPU seconds since the start).
    started_at: float
    generator_cpu: list[tuple[float, float]]


def http_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive) with a Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run_open_loop(
    addresses: list[tuple[str, int]], requests: list[bytes], rate: float, connections: int
) -> OpenLoopAnswers:
    """Send `requests` open loop at `rate` a second on `connections` keep-alive connections, in a process of its own.

    The connections are spread over `addresses` in turn (several processes of one server, as behind a
    load balancer), and a due request takes the connection that has been free longest.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_in_this_process, (addresses, requests, rate, connections))


def _run_in_this_process(
    addresses: list[tuple[str, int]], requests: list[bytes], rate: float, connections: int
) -> OpenLoopAnswers:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_OpenLoop(addresses, requests, rate, connections).run())


class _OpenLoop:
    """One run: the schedule, the free connections, the queue of due requests waiting for one, the records."""

    def __init__(self, addresses: list[tuple[str, int]], requests: list[bytes], rate: float, connections: int) -> None:
        self.addresses, self.requests, self.rate, self.connections = addresses, requests, rate, connections
        count = len(requests)
        self.dispatched, self.written, self.done = [0.0] * count, [0.0] * count, [0.0] * count
        self.statuses, self.bodies = [0] * count, [b""] * count
        self.free: deque[_Connection] = deque()
        self.waiting: deque[int] = deque()
        self.next = 0
        self.unanswered = count
        self.start = 0.0
        self.cpu_at_start = 0.0
        self.cpu: list[tuple[float, float]] = []

    async def run(self) -> OpenLoopAnswers:
        loop = asyncio.get_running_loop()
        self.finished = loop.create_future()
        for number in range(self.connections):
            await self._open_connection(self.addresses[number % len(self.addresses)])
        self.cpu_at_start = time.process_time()
        self.start = time.perf_counter() + START_DELAY_SECONDS
        loop.call_later(START_DELAY_SECONDS, self._dispatch)
        if self.requests:
            await self.finished
        self._note_cpu()
        for connection in self.free:
            connection.transport.close()
        due = [number / self.rate for number in range(len(self.requests))]
        return OpenLoopAnswers(
            due,
            self.dispatched,
            self.written,
            self.done,
            self.statuses,
            self.bodies,
            self.cpu[-1][1],
            self.start,
            self.cpu,
        )

    async def _open_connection(self, address: tuple[str, int]) -> "_Connection":
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: _Connection(self, address), *address)
        self.free.append(connection)
        return connection

    def _dispatch(self) -> None:
        """Send every request now due; then wake again when the next one is due."""
        now = time.perf_counter() - self.start
        count, rate = len(self.requests), self.rate
        while self.next < count and self.next / rate <= now:
            number = self.next
            self.next += 1
            self.dispatched[number] = now
            if self.free:
                self.free.popleft().send(number)
            else:
                self.waiting.append(number)
        if not self.cpu or now - self.cpu[-1][0] >= CPU_NOTE_SECONDS:
            self._note_cpu()
        if self.next < count:
            delay = self.next / rate - (time.perf_counter() - self.start)
            asyncio.get_running_loop().call_later(max(0.0, delay), self._dispatch)

    def _note_cpu(self) -> None:
        self.cpu.append((time.perf_counter() - self.start, time.process_time() - self.cpu_at_start))

    def written_now(self, number: int) -> None:
        self.written[number] = time.perf_counter() - self.start

    def answered(self, connection: "_Connection", number: int, status: int, body: bytes) -> None:
        self.done[number] = time.perf_counter() - self.start
        self.statuses[number], self.bodies[number] = status, body
        self.unanswered -= 1
        if self.unanswered == 0:
            self.finished.set_result(None)
            return
        if connection.open:
            self.connection_free(connection)
        else:  # the server closed it: a new one takes its place
            asyncio.get_running_loop().create_task(self.replace(connection.address))

    async def replace(self, address: tuple[str, int]) -> None:
        """Open a connection in place of one the server closed, and give it to the first waiting request."""
        try:
            connection = await self._open_connection(address)
        except OSError:
            return
        self.free.remove(connection)
        self.connection_free(connection)

    def connection_free(self, connection: "_Connection") -> None:
        if self.waiting:
            connection.send(self.waiting.popleft())
        else:
            self.free.append(connection)


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; answers read by httptools."""

    def __init__(self, run: _OpenLoop, address: tuple[str, int]) -> None:
        import httptools

        self.run, self.address, self.current, self.open = run, address, None, False
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport, self.open = transport, True

    def send(self, number: int) -> None:
        self.current, self.body = number, []
        self.run.written_now(number)
        self.transport.write(self.run.requests[number])

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.current is None:  # an answer to no request: the server timed out an idle connection (408)
            self.transport.close()  # connection_lost replaces it
            return
        number, self.current = self.current, None
        if not self.parser.should_keep_alive():
            self.open = False
            self.transport.close()
        self.run.answered(self, number, self.parser.get_status_code(), b"".join(self.body))

    def connection_lost(self, exc) -> None:
        was_open, self.open = self.open, False
        if self.current is not None:  # no answer: counted apart from the server's 5xx
            number, self.current = self.current, None
            self.run.answered(self, number, 0, b"")
        elif was_open and self in self.run.free:  # closed idle (the server's keep-alive timeout): replaced
            self.run.free.remove(self)
            asyncio.get_running_loop().create_task(self.run.replace(self.address))
