"""Customer tokens for development and demos: HS256 with AUTH_JWT_SECRET, as an identity provider would issue them."""

import time

import jwt

from sneaker_orders.settings import Settings

DEFAULT_TTL_SECONDS = 3600


def mint_customer_token(settings: Settings, customer_id: str, *, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> str:
    """A token of `customer_id` the API accepts, valid `ttl_seconds`; with AUTH_ISSUER / AUTH_AUDIENCE when set."""
    if settings.auth_jwt_secret is None:
        raise ValueError("AUTH_JWT_SECRET is not set: there is no key to sign customer tokens with")
    now = int(time.time())
    claims = {"sub": customer_id, "iat": now, "exp": now + ttl_seconds}
    if settings.auth_issuer:
        claims["iss"] = settings.auth_issuer
    if settings.auth_audience:
        claims["aud"] = settings.auth_audience
    return jwt.encode(claims, settings.auth_jwt_secret.get_secret_value(), algorithm="HS256")
