"""The payment provider's side of a payment, for development and demos: a confirmation signed as it signs them."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from sneaker_orders.settings import Settings


@dataclass(frozen=True)
class SignedWebhook:
    """A webhook ready to POST to its order's confirm path: its body and its Standard Webhooks headers."""

    order_id: int
    body: bytes
    headers: dict[str, str]


def sign_payment(
    settings: Settings, order_id: int, payment_id: str, amount: int, *, webhook_id: str | None = None
) -> SignedWebhook:
    """The confirmation `{"order_id", "payment_id", "amount"}` signed with PAYMENT_WEBHOOK_SECRET, timestamped now.

    The order is named inside the signed body: the signature does not cover the URL path.
    """
    if settings.payment_webhook_secret is None:
        raise ValueError("PAYMENT_WEBHOOK_SECRET is not set: there is no key to sign the payment with")
    body = json.dumps({"order_id": order_id, "payment_id": payment_id, "amount": amount})
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    sent_at = datetime.now(UTC)
    signature = Webhook(settings.payment_webhook_secret.get_secret_value()).sign(webhook_id, sent_at, body)
    return SignedWebhook(
        order_id,
        body.encode(),
        {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature,
        },
    )


def send_payment(api_url: str, webhook: SignedWebhook) -> httpx.Response:
    """POST the signed confirmation to its order's confirm path at the API at `api_url`."""
    return httpx.post(
        f"{api_url.rstrip('/')}/orders/{webhook.order_id}/confirm",
        content=webhook.body,
        headers=webhook.headers,
        timeout=30,
    )
