"""Nothing starves the API: bodies over MAX_REQUEST_BYTES, oversized or endless request heads, slow clients."""

import json
import socket
import threading
import time

import httpx
import pytest

from sneaker_orders.settings import Settings
from tests.support.api_process import api_environment, api_process
from tests.support.customers import customer_headers

MB = 1024 * 1024


@pytest.fixture(scope="module")
def api_server(database_url, tmp_path_factory):
    """`sneaker-orders api` as its own process, with one-second head and body timeouts."""
    environment = api_environment(database_url, REQUEST_HEADER_TIMEOUT_SECONDS="1", REQUEST_BODY_TIMEOUT_SECONDS="1")
    with api_process(environment, tmp_path_factory.mktemp("api") / "api.log") as server:
        yield server


def raw_exchange(url: str, request: bytes, *, wait: float = 5) -> bytes:
    """Send `request` on a fresh connection and read until the server closes it (or `wait` passes)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        try:
            connection.sendall(request)
        except OSError:
            pass  # the server may close before it has read everything: what it answered is still there
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


def ten_megabytes_of_json() -> bytes:
    return b'{"items": [' + b'{"product_id": 1, "quantity": 1},' * (10 * MB // 32) + b"]}"


def test_a_ten_megabyte_body_is_413_before_it_is_parsed_and_the_api_does_not_grow(api_server, catalog):
    body = ten_megabytes_of_json()
    headers = {**customer_headers(), "content-type": "application/json"}
    with httpx.Client(base_url=api_server.url, timeout=60) as client:
        client.get("/products")  # warm
        before = api_server.rss_bytes()

        declared = client.post("/orders", content=body, headers=headers)
        chunked = client.post(
            "/orders", content=(body[i : i + 65536] for i in range(0, len(body), 65536)), headers=headers
        )
        at_once = []
        senders = [
            threading.Thread(target=lambda: at_once.append(client.post("/orders", content=body, headers=headers)))
            for _ in range(4)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=60)

        growth = api_server.rss_bytes() - before
        for response in (declared, chunked, *at_once):
            assert response.status_code == 413
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "REQUEST_TOO_LARGE"
        assert "chunked" not in declared.request.headers.get("transfer-encoding", "")
        assert chunked.request.headers["transfer-encoding"] == "chunked"
        assert growth < 20 * MB, f"the API grew by {growth / MB:.1f} MB"
        assert client.get("/products").status_code == 200
    print(f"six 10 MB bodies refused; API RSS grew by {growth / MB:.1f} MB")


def test_a_body_within_the_limit_is_read_as_usual(api_server, catalog):
    body = json.dumps({"items": [{"product_id": catalog.products["af1"], "quantity": 1}]}).encode()
    padded = body[:-1] + b" " * (60 * 1024) + b"}"

    response = httpx.post(
        f"{api_server.url}/orders", content=padded, headers={**customer_headers(), "content-type": "application/json"}
    )

    assert response.status_code == 201


def split_exchange(url: str, writes: list[bytes]) -> bytes:
    """Send each of `writes` as its own TCP segment on one connection; the server's answer to them."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for write in writes:
            connection.sendall(write)
            time.sleep(0.05)  # apart on the wire, so that the server reads them as two
        # No half-close: a client waits for the answer with its side open (uvicorn drops a connection whose
        # client ended its input before the answer); the requests ask the server to close after answering.
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize("body_kib", [20, 60])
@pytest.mark.parametrize("cut", ["before the last line", "before the blank line", "inside the blank line"])
def test_an_order_whose_head_ends_in_a_second_write_with_its_body_is_placed(api_server, catalog, body_kib, cut):
    order = json.dumps({"items": [{"product_id": catalog.products["af1"], "quantity": 1}]}).encode()
    body = order[:-1] + b" " * (body_kib * 1024) + b"}"
    token = customer_headers(f"split-{body_kib}-{cut}")["Authorization"]
    head = (
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (token.encode(), len(body))
    )
    at = {
        "before the last line": head.rindex(b"Connection:"),
        "before the blank line": len(head) - 2,
        "inside the blank line": len(head) - 1,
    }[cut]

    answer = split_exchange(api_server.url, [head[:at], head[at:] + body])

    assert answer.startswith(b"HTTP/1.1 201 "), answer[:300]


def test_an_oversized_head_is_refused_when_it_ends_in_a_second_write(api_server):
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n"

    answer = split_exchange(api_server.url, [head[:100], head[100:]])

    assert answer.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n",
        b"GET /healthz?" + b"q" * (20 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"\r\n",
    ],
    ids=["large-header", "long-url", "many-headers"],
)
def test_an_oversized_request_head_is_refused_with_431_and_the_connection_closed(api_server, head):
    answer = raw_exchange(api_server.url, head)

    assert answer.startswith(b"HTTP/1.1 431 ")
    assert httpx.get(f"{api_server.url}/healthz").status_code == 200


def test_a_fifty_megabyte_header_is_cut_off_without_growing_the_api(api_server):
    before = api_server.rss_bytes()
    host, port = api_server.url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        try:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            while sent < 50 * MB:
                connection.sendall(b"a" * MB)
                sent += MB
        except OSError:
            pass  # the server closed the connection

    assert sent < 50 * MB, "the server read all of it"
    assert api_server.rss_bytes() - before < 20 * MB
    assert httpx.get(f"{api_server.url}/healthz").status_code == 200


def test_a_client_that_trickles_its_request_head_is_cut_off(api_server):
    started = time.monotonic()

    answer = raw_exchange(api_server.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", wait=10)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 5


def test_a_connection_that_sends_nothing_is_closed(api_server):
    started = time.monotonic()

    answer = raw_exchange(api_server.url, b"", wait=10)

    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < 5


def test_a_client_that_trickles_its_body_gets_408(api_server):
    token = customer_headers()["Authorization"]
    head = (
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        b"Authorization: " + token.encode() + b"\r\n\r\n"
    )

    answer = raw_exchange(api_server.url, head + b'{"items": [', wait=10)

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408 ")
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["code"] == "REQUEST_TIMEOUT"


def test_a_request_answered_before_its_body_ended_is_not_answered_again_when_the_body_stalls(api_server):
    too_large = Settings().max_request_bytes + 1
    head = (
        b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % too_large
    )
    started = time.monotonic()

    answer = raw_exchange(api_server.url, head + b'{"items": [', wait=10)

    assert answer.startswith(b"HTTP/1.1 413 ") and answer.count(b"HTTP/1.1 ") == 1
    assert time.monotonic() - started < 5  # closed at the body's deadline, not left open
