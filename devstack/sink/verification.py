"""How the demo platform checks that a delivery is the relay's: its bearer token and its Standard Webhooks signature."""

import hmac

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class DeliveryRefused(Exception):
    """The request is not a delivery of ours: why, for the 401 answer."""


class DeliveryCheck:
    """The token and signing secret the platform expects (each optional: unset, not checked)."""

    def __init__(self, token: str | None = None, signing_secret: str | None = None) -> None:
        self._token = token
        self._webhook = Webhook(signing_secret) if signing_secret else None

    @property
    def signed(self) -> bool:
        return self._webhook is not None

    def verify(self, headers: dict[str, str], body: bytes) -> None:
        """Raise DeliveryRefused unless the request carries the token and a valid signature of this body."""
        if self._token is not None:
            expected = f"Bearer {self._token}"
            if not hmac.compare_digest(headers.get("authorization", "").encode(), expected.encode()):
                raise DeliveryRefused("missing or wrong bearer token")
        if self._webhook is not None:
            try:
                self._webhook.verify(body, headers, json_parse=False)
            except (WebhookVerificationError, ValueError) as failure:
                raise DeliveryRefused(f"bad signature: {failure}") from failure
            if headers.get("webhook-id") != headers.get("idempotency-key"):
                raise DeliveryRefused("webhook-id is not the event id")
