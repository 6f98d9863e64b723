"""Orders: a customer places, lists, reads and cancels their own; the payment provider confirms."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, TypeAdapter

from api.customer_auth import CustomerDep, bearer_token, customer_of_request
from api.deps import EngineDep
from api.direct_route import DirectRoute, asgi_endpoint
from api.openapi import BODY_GUARD_STATUSES, problems
from api.order_cursor import CURSOR_PATTERN, decode_cursor, encode_cursor
from api.order_placement import place_for_customer, send_placed
from api.order_request import order_request_headers, request_body, validated_order
from api.payment_webhook import CONFIRMATION_BODY, SignedConfirmationDep
from api.schemas import IdempotencyKeyValue, OrderIdInPath, PlaceOrderBody
from api.write_slots import WriteSlotsDep
from db.orders.lifecycle import cancel_order
from db.orders.listing import list_orders
from db.orders.payments import PaymentWebhook, confirm_payment
from db.orders.view import OrderView, read_order
from db.statuses import OrderStatus
from sneaker_orders.tracing import current_traceparent

router = APIRouter(prefix="/orders", tags=["orders"])

OrderIdPath = Annotated[OrderIdInPath, Path(description="the order's id (decimal digits)")]
_KEY_DOC = {
    "description": "retries with the same key and body get the first response, no second order; keys belong to"
    " the customer and are kept IDEMPOTENCY_KEY_TTL_HOURS (default 24), after which the key is free again"
}

# Every customer request is counted against the customer's rate (api/customer_auth.py, customer_of_request).
_RATE_LIMITED = "RATE_LIMITED (CUSTOMER_RATE_LIMIT_PER_SECOND)"

_PLACED_HEADERS = {
    "Location": {"description": "/orders/{order_id}", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the first response to the same Idempotency-Key, replayed",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


class OrderPage(BaseModel):
    """A page of the caller's orders, newest first."""

    orders: list[OrderView]
    next_cursor: str | None = Field(description="pass as `?cursor=` to get the next page; null on the last page")


def _place_order_operation() -> dict:
    """The parts of POST /orders' OpenAPI operation that its direct endpoint reads itself: body, key, token."""
    body = PlaceOrderBody.model_json_schema(ref_template="#/components/schemas/{model}")
    key = TypeAdapter(IdempotencyKeyValue).json_schema()
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False, "schema": key, **_KEY_DOC}],
        "security": [{"CustomerToken": []}],
    }


@asgi_endpoint
async def create_order(scope, receive, send) -> None:
    """Place an order for the caller: stock, coupon use, order and its OrderCreated event commit together."""
    state = scope["app"].state
    headers = order_request_headers(scope["headers"])
    customer = await customer_of_request(state, bearer_token(headers.authorization))  # before any database work
    order, idempotency_key = validated_order(headers, await request_body(receive))
    placed = await place_for_customer(state, customer, order, idempotency_key)
    await send_placed(send, placed)


def add_place_order_route(app_router: APIRouter) -> DirectRoute:
    """Add POST /orders to the app's own router, ahead of the included routers; the route added."""
    app_router.add_api_route(
        "/orders",
        create_order,
        methods=["POST"],
        status_code=201,
        route_class_override=DirectRoute,
        responses={
            201: {
                "model": OrderView,
                "description": "the order placed (or, replayed, the first response)",
                "headers": _PLACED_HEADERS,
            },
            **problems(
                400,
                401,
                409,
                422,
                429,
                503,
                *BODY_GUARD_STATUSES,
                codes={
                    400: "PRODUCT_NOT_FOUND, PRODUCT_UNAVAILABLE, INSUFFICIENT_STOCK, PURCHASE_LIMIT_EXCEEDED,"
                    " LINE_PAIRS_EXCEEDED, ORDER_PAIRS_EXCEEDED, UNPAID_PAIRS_EXCEEDED, RECENTLY_CANCELLED,"
                    " COUPON_NOT_FOUND, COUPON_NOT_ACTIVE, COUPON_MIN_AMOUNT_NOT_MET or COUPON_EXHAUSTED",
                    409: "IDEMPOTENCY_KEY_IN_FLIGHT",
                    422: "VALIDATION_ERROR or IDEMPOTENCY_KEY_REUSED",
                    429: f"{_RATE_LIMITED} or TOO_MANY_UNPAID_ORDERS",
                    503: "DATABASE_UNAVAILABLE, ORDER_CONTENTION or AUTH_UNAVAILABLE",
                },
            ),
        },
        openapi_extra=_place_order_operation(),
        tags=["orders"],
    )
    return app_router.routes[-1]


@router.get(
    "",
    responses=problems(401, 422, 429, 503, codes={429: _RATE_LIMITED, 503: "DATABASE_UNAVAILABLE or AUTH_UNAVAILABLE"}),
)
async def get_orders(
    customer: CustomerDep,
    engine: EngineDep,
    status: Annotated[OrderStatus | None, Query(description="only the orders in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="orders per page")] = 20,
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the `next_cursor` of the previous page")
    ] = None,
) -> OrderPage:
    """The caller's orders, newest first, a page at a time."""
    page = await list_orders(
        engine, customer, status=status, limit=limit, after=None if cursor is None else decode_cursor(cursor)
    )
    return OrderPage(
        orders=page.orders, next_cursor=None if page.next_cursor is None else encode_cursor(page.next_cursor)
    )


@router.get(
    "/{order_id}",
    responses=problems(401, 404, 422, 429, 503, codes={404: "ORDER_NOT_FOUND", 429: _RATE_LIMITED}),
)
async def get_order(order_id: OrderIdPath, customer: CustomerDep, engine: EngineDep) -> OrderView:
    """The caller's order as it is now; another customer's order is 404."""
    return await read_order(engine, order_id, customer_id=customer)


@router.post(
    "/{order_id}/confirm",
    responses=problems(
        400,
        401,
        404,
        409,
        422,
        503,
        *BODY_GUARD_STATUSES,
        codes={
            400: "PAYMENT_AMOUNT_MISMATCH or ORDER_ID_MISMATCH (the signed body names another order)",
            404: "ORDER_NOT_FOUND",
            409: "INVALID_ORDER_STATE (cancelled, paid by another payment, or the payment paid another order),"
            " ORDER_EXPIRED (past expires_at: refund the payment) or WEBHOOK_ID_REUSED (answered for another order)",
            503: "DATABASE_UNAVAILABLE or ORDER_CONTENTION",
        },
    ),
    openapi_extra=CONFIRMATION_BODY,
)
async def confirm(
    order_id: OrderIdPath, confirmation: SignedConfirmationDep, engine: EngineDep, write_slots: WriteSlotsDep
) -> OrderView:
    """The payment provider's webhook: payment completed, the order becomes CONFIRMED, OrderConfirmed is written.

    Body `{"order_id": int, "payment_id": str, "amount": int}`, signed per Standard Webhooks with
    PAYMENT_WEBHOOK_SECRET (headers webhook-id, webhook-timestamp, webhook-signature; 5 minutes of
    tolerance), checked before the body is parsed. The signature does not cover the URL, so the body names
    its order: an `order_id` other than the path's is 400 ORDER_ID_MISMATCH and changes nothing. A repeated
    webhook-id gets the first answer again for the same order and changes nothing; for another order it is
    409 WEBHOOK_ID_REUSED. Past the order's expires_at the payment is refused with 409 ORDER_EXPIRED (and
    the order expires).
    """
    async with write_slots.hold():
        return await confirm_payment(
            engine,
            PaymentWebhook(confirmation.webhook_id, order_id, confirmation.body.payment_id, confirmation.body.amount),
            traceparent=current_traceparent(),
        )


@router.post(
    "/{order_id}/cancel",
    responses=problems(
        401,
        404,
        409,
        422,
        429,
        503,
        *BODY_GUARD_STATUSES,
        codes={
            404: "ORDER_NOT_FOUND",
            409: "INVALID_ORDER_STATE (only a CREATED order can be cancelled)",
            429: _RATE_LIMITED,
        },
    ),
)
async def cancel(
    order_id: OrderIdPath, customer: CustomerDep, engine: EngineDep, write_slots: WriteSlotsDep
) -> OrderView:
    """Cancel the caller's CREATED order: stock and coupon use are given back, OrderCancelled is written."""
    async with write_slots.hold():
        return await cancel_order(engine, order_id, customer_id=customer, traceparent=current_traceparent())
