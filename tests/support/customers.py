"""Customer tokens as an identity provider would issue them (HS256 with the suite's AUTH_JWT_SECRET)."""

import time

import jwt

JWT_SECRET = "test-customer-token-secret-of-32-bytes!"
CUSTOMER = "customer-1"


def token_for(customer: str = CUSTOMER, *, ttl_seconds: float = 3600, secret: str = JWT_SECRET, **claims) -> str:
    """A valid token of `customer`; `claims` add to or replace the standard ones."""
    now = int(time.time())
    return jwt.encode({"sub": customer, "iat": now, "exp": now + ttl_seconds, **claims}, secret, algorithm="HS256")


def customer_headers(customer: str = CUSTOMER, **claims) -> dict[str, str]:
    """The Authorization header of `customer`."""
    return {"Authorization": f"Bearer {token_for(customer, **claims)}"}
