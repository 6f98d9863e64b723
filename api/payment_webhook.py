"""The payment provider's webhooks, signed per the Standard Webhooks spec with PAYMENT_WEBHOOK_SECRET.

`webhook-signature` is an HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`; the timestamp
must be within 5 minutes of this server's clock. What is signed is the id, the time and the body,
not the URL: so the body names its order (`order_id`), and a body sent to another order's path is
refused (400 ORDER_ID_MISMATCH) before anything is read or written. A captured webhook replayed
later is stale, and replayed within the tolerance it repeats its webhook-id, which is answered as
the first time for the same order only (db/orders/payments.py).
"""

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api.problems import ApiProblem
from api.schemas import ConfirmOrderBody, OrderIdInPath, body_errors
from sneaker_orders.settings import Settings

# What payment_webhooks.webhook_id holds: printable ASCII, bounded.
WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,255}")

# Documents the signature in the OpenAPI schema; the check itself is below.
_signature = APIKeyHeader(
    name="webhook-signature",
    scheme_name="PaymentWebhookSignature",
    auto_error=False,
    description="Standard Webhooks signature (`v1,<base64 HMAC-SHA256>`) with PAYMENT_WEBHOOK_SECRET,"
    " over `{webhook-id}.{webhook-timestamp}.{body}`; with headers webhook-id and webhook-timestamp",
)


# The body is read by the signature check, and parsed only once it is known to come from the provider;
# the route documents it with this.
CONFIRMATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ConfirmOrderBody.model_json_schema()}},
    }
}


@dataclass(frozen=True)
class SignedConfirmation:
    """A confirmation the payment provider signed for the order of the path: its webhook-id and its body."""

    webhook_id: str
    body: ConfirmOrderBody


class PaymentWebhookNotConfigured(ValueError):
    """The API was started without PAYMENT_WEBHOOK_SECRET, or with one that is not a webhook secret."""


def payment_webhook_verifier(settings: Settings) -> Webhook:
    """The verifier of PAYMENT_WEBHOOK_SECRET; raises PaymentWebhookNotConfigured when it is missing or malformed."""
    if settings.payment_webhook_secret is None:
        raise PaymentWebhookNotConfigured(
            "PAYMENT_WEBHOOK_SECRET is not set: payments could never be confirmed"
            " (a Standard Webhooks secret, whsec_ and base64)"
        )
    try:
        return Webhook(settings.payment_webhook_secret.get_secret_value())
    except Exception:  # the library raises binascii.Error or its own error on a bad secret
        raise PaymentWebhookNotConfigured(
            "PAYMENT_WEBHOOK_SECRET is not a Standard Webhooks secret (whsec_ followed by base64)"
        ) from None


async def signed_confirmation(
    request: Request,
    order_id: Annotated[OrderIdInPath, Path(description="the order's id (decimal digits)")],
    signature: Annotated[str | None, Depends(_signature)],
    webhook_id: Annotated[
        str | None, Header(alias="webhook-id", description="the message's unique id; a repeat is answered the same")
    ] = None,
    webhook_timestamp: Annotated[
        str | None, Header(alias="webhook-timestamp", description="seconds since the epoch, within 5 minutes")
    ] = None,
) -> SignedConfirmation:
    """The webhook-id and body of a request the payment provider signed for this order.

    401 UNAUTHORIZED before any parsing; 400 ORDER_ID_MISMATCH when the signed body names another order.
    """
    if not (signature and webhook_id and webhook_timestamp):
        raise _unauthorized("a payment webhook needs the headers webhook-id, webhook-timestamp and webhook-signature")
    if not WEBHOOK_ID.fullmatch(webhook_id):
        raise _unauthorized("webhook-id must be 1 to 255 printable ASCII characters")
    verifier: Webhook = request.app.state.payment_webhook
    headers = {"webhook-id": webhook_id, "webhook-timestamp": webhook_timestamp, "webhook-signature": signature}
    raw = await request.body()
    try:
        verifier.verify(raw, headers, json_parse=False)
    except WebhookVerificationError as refused:
        raise _unauthorized(f"the payment webhook's signature was refused: {refused}") from None
    except ValueError:  # the library's parsing of a malformed signature header or of a body that is not UTF-8
        raise _unauthorized("the payment webhook's signature was refused: malformed signature or body") from None
    try:
        body = ConfirmOrderBody.model_validate_json(raw)
    except ValidationError as invalid:
        raise RequestValidationError(body_errors(invalid)) from None
    if body.order_id != order_id:
        raise ApiProblem(
            400,
            "ORDER_ID_MISMATCH",
            f"this payment confirmation names order {body.order_id}, not order {order_id}: send it to"
            f" /orders/{body.order_id}/confirm",
        )
    return SignedConfirmation(webhook_id, body)


def _unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, "UNAUTHORIZED", detail, headers={"WWW-Authenticate": 'Webhook realm="payments"'})


SignedConfirmationDep = Annotated[SignedConfirmation, Depends(signed_confirmation)]
