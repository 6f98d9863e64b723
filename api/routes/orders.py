"""Orders: place, read, confirm, cancel."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from api.deps import EngineDep, SettingsDep
from api.metrics import ORDERS_PLACED
from api.openapi import problems
from api.schemas import ConfirmOrderBody, OrderId, PlaceOrderBody
from db.orders.lifecycle import cancel_order, confirm_order
from db.orders.placement import PlaceOrder, place_order
from db.orders.pricing import OrderLine
from db.orders.view import OrderView, read_order

router = APIRouter(prefix="/orders", tags=["orders"])

OrderIdPath = Annotated[OrderId, Path(description="the order's id")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="retries with the same key and body get the first response; no second order",
    ),
]


@router.post("", status_code=201, responses=problems(400, 409, 422, 503))
async def create_order(
    body: PlaceOrderBody,
    engine: EngineDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderView:
    """Place an order: stock, coupon use, order and its OrderCreated event commit together."""
    placed = await place_order(
        engine,
        PlaceOrder(
            customer_id=body.customer_id,
            lines=[OrderLine(line.product_id, line.quantity) for line in body.items],
            coupon_id=body.coupon_id,
            idempotency_key=idempotency_key,
            payment_ttl=timedelta(seconds=settings.order_payment_ttl_seconds),
        ),
    )
    response.headers["Location"] = f"/orders/{placed.order.order_id}"
    if placed.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        ORDERS_PLACED.inc()
    return placed.order


@router.get("/{order_id}", responses=problems(404, 422, 503))
async def get_order(order_id: OrderIdPath, engine: EngineDep) -> OrderView:
    """The order as it is now."""
    return await read_order(engine, order_id)


@router.post("/{order_id}/confirm", responses=problems(400, 404, 409, 422, 503))
async def confirm(order_id: OrderIdPath, body: ConfirmOrderBody, engine: EngineDep) -> OrderView:
    """Payment completed: the order becomes CONFIRMED and OrderConfirmed is written with it."""
    return await confirm_order(engine, order_id, body.payment_id, body.amount)


@router.post("/{order_id}/cancel", responses=problems(404, 409, 422, 503))
async def cancel(order_id: OrderIdPath, engine: EngineDep) -> OrderView:
    """Cancel a CREATED order: stock and coupon use are given back, OrderCancelled is written."""
    return await cancel_order(engine, order_id)
