"""Customers: `Authorization: Bearer <JWT>`, verified with PyJWT; the customer is the token's `sub`.

Only the configured algorithms are accepted, each with its own key: HS256 with AUTH_JWT_SECRET,
RS256/ES256 with AUTH_PUBLIC_KEY or the keys of AUTH_JWKS_URL. The key is chosen by the token's
`alg` among those, so an `alg: none` token, or an HS256 token "signed" with a public key, is refused.
`exp` is required; `iss` and `aud` are checked when AUTH_ISSUER / AUTH_AUDIENCE are set.
"""

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import State

from api.problems import ApiProblem
from api.signing_keys import JwksKeys, SigningKeysUnavailable, UnknownSigningKey
from sneaker_orders.settings import Settings

# Clocks of the issuer and of this server may differ by this much.
CLOCK_SKEW_SECONDS = 30
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
CUSTOMER_ID_MAX_LENGTH = 64
# RFC 7518: an HS256 key at least as long as the hash.
HS256_SECRET_MIN_BYTES = 32
# Tokens this process has verified, kept until their exp (not exp plus the skew) so that a customer's next
# request skips the signature check (about 50 µs of CPU for HS256). Bounded: the oldest go first.
VERIFIED_TOKENS_KEPT = 32768

_bearer = HTTPBearer(
    scheme_name="CustomerToken",
    bearerFormat="JWT",
    auto_error=False,
    description="a customer's JWT: `sub` is the customer; `exp` required (`sneaker-orders token` makes one)",
)


class CustomerAuthNotConfigured(ValueError):
    """The API was started without any way to verify customer tokens."""


class InvalidCustomerToken(Exception):
    """The token does not prove who the customer is."""


def customer_id_problem(customer_id: object) -> str | None:
    """Why `customer_id` is not acceptable as a customer id, or None: 1-64 printable characters.

    Printable excludes control, format (bidi, zero-width) and separator characters other than the space.
    """
    if not isinstance(customer_id, str):
        return "the customer (sub) must be a string"
    if not 1 <= len(customer_id) <= CUSTOMER_ID_MAX_LENGTH:
        return f"the customer (sub) must be 1 to {CUSTOMER_ID_MAX_LENGTH} characters long"
    if not customer_id.isprintable():
        return "the customer (sub) may hold only printable characters (no control, bidi or zero-width ones)"
    return None


@dataclass(frozen=True)
class CustomerTokens:
    """The keys and claims customer tokens are checked against."""

    hs256_secret: str | None
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey | None
    jwks: JwksKeys | None
    issuer: str | None
    audience: str | None
    # token -> (customer, exp): exactly the token strings verified here, each until its exp.
    _verified: dict[str, tuple[str, float]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> "CustomerTokens":
        """The verifier of `settings`; raises CustomerAuthNotConfigured when no key is configured."""
        secret = settings.auth_jwt_secret.get_secret_value() if settings.auth_jwt_secret else None
        if secret is not None and len(secret.encode()) < HS256_SECRET_MIN_BYTES:
            raise CustomerAuthNotConfigured(f"AUTH_JWT_SECRET must be at least {HS256_SECRET_MIN_BYTES} bytes long")
        public_key = _load_public_key(settings.auth_public_key) if settings.auth_public_key else None
        jwks = (
            JwksKeys(
                settings.auth_jwks_url,
                timeout_seconds=settings.auth_jwks_timeout_seconds,
                refresh_seconds=settings.auth_jwks_refresh_seconds,
            )
            if settings.auth_jwks_url
            else None
        )
        if not (secret or public_key or jwks):
            raise CustomerAuthNotConfigured(
                "no way to verify customer tokens: set AUTH_JWT_SECRET (HS256, development),"
                " AUTH_PUBLIC_KEY or AUTH_JWKS_URL (RS256/ES256)"
            )
        return cls(secret, public_key, jwks, settings.auth_issuer, settings.auth_audience)

    @cached_property
    def algorithms(self) -> list[str]:
        """The algorithms a token may be signed with."""
        accepted = ["HS256"] if self.hs256_secret else []
        if self.jwks is not None:
            accepted += ASYMMETRIC_ALGORITHMS
        elif isinstance(self.public_key, rsa.RSAPublicKey):
            accepted.append("RS256")
        elif isinstance(self.public_key, ec.EllipticCurvePublicKey):
            accepted.append("ES256")
        return accepted

    async def customer_of(self, token: str) -> str:
        """The customer `token` proves; raises InvalidCustomerToken saying why not."""
        verified = self._verified.get(token)
        if verified is not None and time.time() < verified[1]:
            return verified[0]
        customer, expires_at = await self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (customer, expires_at)
        return customer

    async def _verify(self, token: str) -> tuple[str, float]:
        """The customer `token` proves and its exp, from its signature and claims."""
        try:
            algorithms = self.algorithms
            if len(algorithms) == 1 and self.jwks is None:
                # PyJWT refuses any other alg itself; reading the header first would parse the token twice.
                algorithm, header = algorithms[0], None
            else:
                header = jwt.get_unverified_header(token)
                algorithm = header.get("alg")
                if algorithm not in algorithms:
                    raise InvalidCustomerToken(f"tokens signed with {algorithm!r} are not accepted")
            claims = jwt.decode(
                token,
                await self._key_for(algorithm, header),
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=CLOCK_SKEW_SECONDS,
                options={
                    "require": ["exp", "sub", *(["iss"] if self.issuer else []), *(["aud"] if self.audience else [])],
                    "verify_aud": self.audience is not None,
                },
            )
        except UnknownSigningKey as unknown:
            raise InvalidCustomerToken(str(unknown)) from None
        except jwt.PyJWTError as error:
            raise InvalidCustomerToken(str(error)) from None
        problem = customer_id_problem(claims["sub"])
        if problem is not None:
            raise InvalidCustomerToken(problem)
        return claims["sub"], float(claims["exp"])

    async def _key_for(self, algorithm: str, header: dict | None):
        if algorithm == "HS256":
            return self.hs256_secret
        if self.public_key is not None:
            return self.public_key
        # Known keys answer from memory; a new kid waits at most for one fetch (api/signing_keys.py).
        return await self.jwks.key_for(header.get("kid"))


def _load_public_key(pem: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as error:
        raise CustomerAuthNotConfigured(f"AUTH_PUBLIC_KEY is not a PEM public key: {error}") from None
    if isinstance(key, rsa.RSAPublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise CustomerAuthNotConfigured("AUTH_PUBLIC_KEY must be an RSA (RS256) or P-256 (ES256) public key")


async def authenticated_customer(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    """The customer of the request's bearer token (401 UNAUTHORIZED), within their rate (429 RATE_LIMITED)."""
    return await customer_of_request(request.app.state, credentials and credentials.credentials)


async def customer_of_request(state: State, token: str | None) -> str:
    """The customer a request's bearer token proves, who takes one request of their CUSTOMER_RATE_LIMIT_PER_SECOND.

    Every customer request passes here before any database work: the routes through CustomerDep,
    POST /orders (which reads its headers itself) by calling it. 401 UNAUTHORIZED (503
    AUTH_UNAVAILABLE) as customer_of_token; 429 RATE_LIMITED with Retry-After beyond the rate.
    """
    customer = await customer_of_token(state.customer_tokens, token)
    state.customer_rate_limit.check(customer)
    return customer


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, read as FastAPI's HTTPBearer reads it; None if none."""
    scheme, token = get_authorization_scheme_param(authorization)
    return token if token and scheme.lower() == "bearer" else None


async def customer_of_token(tokens: CustomerTokens, token: str | None) -> str:
    """The customer a bearer token proves, or 401 UNAUTHORIZED (503 AUTH_UNAVAILABLE when the keys cannot be had)."""
    if token is None:
        raise _unauthorized("this endpoint needs Authorization: Bearer <customer JWT>", error=None)
    try:
        return await tokens.customer_of(token)
    except InvalidCustomerToken as invalid:
        raise _unauthorized(f"the bearer token was refused: {invalid}", error="invalid_token") from None
    except SigningKeysUnavailable as error:
        raise ApiProblem(503, "AUTH_UNAVAILABLE", str(error), {"Retry-After": "5"}) from None


def _unauthorized(detail: str, *, error: str | None) -> ApiProblem:
    challenge = "Bearer" if error is None else f'Bearer error="{error}"'
    return ApiProblem(401, "UNAUTHORIZED", detail, headers={"WWW-Authenticate": challenge})


CustomerDep = Annotated[str, Depends(authenticated_customer)]
