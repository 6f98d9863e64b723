"""Payment webhooks signed as the payment provider signs them (Standard Webhooks, the suite's secret)."""

import json
import time
import uuid
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

# A Standard Webhooks secret: whsec_ and the base64 of the key.
WEBHOOK_SECRET = "whsec_dGVzdC1wYXltZW50LXdlYmhvb2stc2VjcmV0LWtleS0zMmI="


def signed(
    body: bytes, *, webhook_id: str | None = None, timestamp: float | None = None, secret: str = WEBHOOK_SECRET
) -> dict[str, str]:
    """The webhook headers of `body`: id, timestamp and signature."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    sent_at = time.time() if timestamp is None else timestamp
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(sent_at, UTC), body.decode())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(sent_at)),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def confirmation_body(order: dict, payment_id: str = "pay-1", amount: int | None = None) -> bytes:
    """The body of the provider's confirmation of `order` (named inside it; its total unless `amount`)."""
    total = order["total"] if amount is None else amount
    return json.dumps({"order_id": order["order_id"], "payment_id": payment_id, "amount": total}).encode()


def pay(
    client: httpx.Client, order: dict, *, payment_id: str = "pay-1", amount: int | None = None, **signing
) -> httpx.Response:
    """POST the provider's signed confirmation of `order` (its total unless `amount`)."""
    body = confirmation_body(order, payment_id, amount)
    return client.post(f"/orders/{order['order_id']}/confirm", content=body, headers=signed(body, **signing))
