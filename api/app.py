"""The FastAPI application: built from settings, one engine per process."""

import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.customer_auth import CustomerTokens
from api.customer_rate_limit import CustomerRateLimit
from api.direct_route import DirectDoor
from api.metrics import RequestTiming
from api.openapi import install_openapi
from api.order_placement import OrderTerms
from api.outbox_gauges import OutboxGauges
from api.payment_webhook import payment_webhook_verifier
from api.problems import install_problem_handlers
from api.request_guard import RequestBodyGuard
from api.routes import asyncapi, events, health, orders, products
from api.write_slots import WriteSlots
from db.engine import create_engine_from_settings
from db.orders.catalog_cache import CatalogCache
from db.orders.holdings_cache import HoldingsCache
from db.orders.stock_returns import StockReturnsListener
from sneaker_orders.settings import Settings
from sneaker_orders.tracing import instrument_api

GC_YOUNG_THRESHOLD = 10_000

DESCRIPTION = """
Orders are placed before payment. Placing one checks products, stock, the customer's limits and
the coupon, takes the stock, saves the order as CREATED and writes an OrderCreated event to the
outbox, in one transaction. Customers authenticate with a bearer JWT (`sub` is the customer) and
see only their own orders; payments are confirmed by the payment provider's signed webhook.
Errors are `application/problem+json` with a stable `code`.
"""


def create_app(settings: Settings) -> FastAPI:
    """The API for `settings`; its engine opens at start-up and closes at shutdown.

    Raises ValueError (saying what to set) when the settings cannot verify customers or payments.
    """
    if not settings.database_url:
        raise ValueError("create_app needs settings with a database_url")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = create_engine_from_settings(settings, application_name="sneaker-orders-api")
        app.state.write_slots = WriteSlots.for_pool(
            app.state.engine,
            settings.database_pool_size,
            settings.database_pool_max_overflow,
            settings.database_pool_timeout_seconds,
        )
        stock_returns = StockReturnsListener(settings.database_url, app.state.catalog_cache)
        stock_returns.start()
        # Everything alive now lives as long as the process: the collector need not walk it again and
        # again (the collector took about 8 % of the order path's CPU).
        gc.collect()
        gc.freeze()
        # A young collection every 10,000 allocations rather than 700: an order allocates a few
        # hundred objects, nearly all freed by reference counting before any collection looks at them.
        thresholds = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            await stock_returns.stop()
            await app.state.write_slots.close()
            await app.state.engine.dispose()

    # /docs (Swagger UI) and /redoc load their scripts and styles from this server, not from a CDN.
    app = FastAPIOffline(title="sneaker-orders", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.customer_tokens = CustomerTokens.from_settings(settings)
    app.state.catalog_cache = CatalogCache(stock_seconds=settings.sold_out_memory_seconds)
    app.state.holdings_cache = HoldingsCache()
    app.state.customer_rate_limit = CustomerRateLimit.from_settings(settings)
    app.state.order_terms = OrderTerms.from_settings(settings)
    app.state.payment_webhook = payment_webhook_verifier(settings)
    app.state.outbox_gauges = OutboxGauges(settings.metrics_outbox_interval_seconds)
    install_problem_handlers(app)
    install_openapi(app)

    def middleware(inner):
        """The app's own middleware around `inner`: every request's body size guarded, every request timed."""
        return RequestTiming(RequestBodyGuard(inner, max_bytes=settings.max_request_bytes))

    app.add_middleware(middleware)
    place_order = orders.add_place_order_route(app.router)
    # POST /orders, the hottest request, reaches its route's endpoint without going through the router.
    app.add_middleware(DirectDoor, route=place_order, exception_handlers=app.exception_handlers, middleware=middleware)
    for router in (orders.router, products.router, events.router, health.router, asyncapi.router):
        app.include_router(router)
    # Only where this process traces (OTEL_*): otherwise no middleware at all.
    instrument_api(app, settings)
    return app
