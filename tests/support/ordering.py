"""Placing orders through the API, as one customer or many at once."""

import asyncio

import httpx

from tests.support.customers import CUSTOMER, customer_headers


def order_body(*lines: tuple[int, int], coupon_id: int | None = None) -> dict:
    """The body of POST /orders for (product id, quantity) lines."""
    body: dict = {"items": [{"product_id": product, "quantity": quantity} for product, quantity in lines]}
    if coupon_id is not None:
        body["coupon_id"] = coupon_id
    return body


def place(
    client: httpx.Client, *lines: tuple[int, int], coupon_id: int | None = None, customer: str = CUSTOMER, **kwargs
) -> httpx.Response:
    """POST /orders as `customer`."""
    headers = {**customer_headers(customer), **kwargs.pop("headers", {})}
    return client.post("/orders", json=order_body(*lines, coupon_id=coupon_id), headers=headers, **kwargs)


def placed(client: httpx.Client, *lines: tuple[int, int], **kwargs) -> dict:
    """The order placed by `place`, which must succeed."""
    response = place(client, *lines, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


def place_concurrently(api_url: str, orders: list[tuple[str, dict]]) -> list[httpx.Response]:
    """Send every (customer, body) at once, one connection each; the responses in order."""

    async def send_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(orders))
        async with httpx.AsyncClient(base_url=api_url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/orders", json=body, headers=customer_headers(customer)) for customer, body in orders)
            )

    return asyncio.run(send_all())
