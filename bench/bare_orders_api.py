"""The bare peer of POST /orders: FastAPI and raw psycopg, no features, for bench/orders.py to measure alike.

    .venv/bin/python bench/bare_orders_api.py --port P --database-url postgresql+psycopg://...

One route, POST /orders `{"items": [{"product_id", "quantity"}]}` (one line used), validated by a
pydantic model as FastAPI does, and the order transaction written plainly on a small pool of
psycopg connections (BEGIN, stock update, order, line and event inserts, COMMIT, pipelined):
no authentication, no idempotency, no limits, no coupon, no outbox writer, no metrics, no guards.
Served by the same uvicorn (httptools, uvloop) as the API.
"""

import argparse
import asyncio
import json
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy.engine import make_url


class Line(BaseModel):
    product_id: int
    quantity: int


class OrderBody(BaseModel):
    items: list[Line]


def create_bare_app(database_url: str, pool_size: int) -> FastAPI:
    """The bare app on `database_url` with `pool_size` connections."""
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    idle: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for _ in range(pool_size):
            idle.put_nowait(await psycopg.AsyncConnection.connect(conninfo, options="-c timezone=UTC"))
        yield
        while not idle.empty():
            await idle.get_nowait().close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/orders", status_code=201)
    async def place(body: OrderBody) -> dict:
        line = body.items[0]
        now = datetime.now(UTC)
        connection = await idle.get()
        try:
            async with connection.transaction():
                async with connection.pipeline():
                    taken = await connection.execute(
                        "UPDATE products SET stock = stock - %s WHERE id = %s AND stock >= %s AND active"
                        " RETURNING price",
                        (line.quantity, line.product_id, line.quantity),
                    )
                    price = (await taken.fetchone() or [None])[0]
                    if price is None:
                        raise HTTPException(400, "unavailable")
                    total = price * line.quantity
                    order_id = (
                        await (
                            await connection.execute(
                                "INSERT INTO orders (status, customer_id, subtotal, discount, total, created_at,"
                                " expires_at) VALUES ('CREATED', 'bare', %s, 0, %s, %s, %s) RETURNING id",
                                (total, total, now, now + timedelta(minutes=15)),
                            )
                        ).fetchone()
                    )[0]
                    order = {
                        "order_id": order_id,
                        "items": [{"product_id": line.product_id, "quantity": line.quantity, "unit_price": price}],
                        "total": total,
                        "created_at": now.isoformat(),
                    }
                    await connection.execute(
                        "INSERT INTO order_items (order_id, product_id, quantity, unit_price, line_total)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        (order_id, line.product_id, line.quantity, price, total),
                    )
                    await connection.execute(
                        "INSERT INTO order_events (event_id, aggregate_type, aggregate_id, sequence, event_type,"
                        " payload, created_at) VALUES (%s, 'order', %s, 1, 'OrderCreated', %s, %s)",
                        (uuid.uuid4(), str(order_id), json.dumps(order), now),
                    )
        finally:
            idle.put_nowait(connection)
        return order

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=16)
    args = parser.parse_args()
    app = create_bare_app(args.database_url, args.pool_size)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
