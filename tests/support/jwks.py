"""An identity provider's keys: RSA and EC key pairs, and a JWKS endpoint served on loopback."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(private_key) -> str:
    """The PEM of `private_key`'s public key, as AUTH_PUBLIC_KEY takes it."""
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def signed_token(private_key, algorithm: str, customer: str = "customer-1", *, kid: str | None = None, **claims) -> str:
    """A token of `customer` signed with `private_key`."""
    now = int(time.time())
    headers = {"kid": kid} if kid else None
    return jwt.encode(
        {"sub": customer, "iat": now, "exp": now + 600, **claims}, private_key, algorithm=algorithm, headers=headers
    )


def jwk_of(private_key, kid: str, algorithm: str) -> dict:
    """The public JWK of `private_key`."""
    algorithm_class = jwt.algorithms.RSAAlgorithm if algorithm == "RS256" else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm_class.to_jwk(private_key.public_key())), "kid": kid, "alg": algorithm, "use": "sig"}


class JwksEndpoint:
    """An identity provider's JWKS endpoint that can be told to hang; it counts the fetches it gets."""

    def __init__(self, keys: list[dict]) -> None:
        self.body = json.dumps({"keys": keys}).encode()
        self.fetches = 0
        self.hanging = threading.Event()
        self.released = threading.Event()
        self.url = ""

    def publish(self, keys: list[dict]) -> None:
        """Serve these keys from now on (a rotation)."""
        self.body = json.dumps({"keys": keys}).encode()

    def hang(self) -> None:
        """From now on, accept each fetch and never answer it (until the endpoint stops)."""
        self.hanging.set()


@contextmanager
def serve_jwks(keys: list[dict]) -> Iterator[str]:
    """Serve {"keys": keys} on a free loopback port; yields its URL."""
    with jwks_endpoint(keys) as endpoint:
        yield endpoint.url


@contextmanager
def jwks_endpoint(keys: list[dict]) -> Iterator[JwksEndpoint]:
    """A JwksEndpoint serving {"keys": keys} on a free loopback port."""
    endpoint = JwksEndpoint(keys)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            endpoint.fetches += 1
            if endpoint.hanging.is_set():
                endpoint.released.wait()
                return
            body = endpoint.body
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="jwks", daemon=True)
    thread.start()
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        yield endpoint
    finally:
        endpoint.released.set()
        server.shutdown()
        thread.join(timeout=5)
