"""The FastAPI application: built from settings, one engine per process."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.metrics import RequestTiming
from api.openapi import install_openapi
from api.problems import install_problem_handlers
from api.routes import events, health, orders, products
from db.engine import create_engine
from sneaker_orders.settings import Settings

DESCRIPTION = """
Orders are placed before payment. Placing one checks products, stock and coupon, takes the stock,
saves the order as CREATED and writes an OrderCreated event to the outbox, in one transaction.
Errors are `application/problem+json` with a stable `code`.
"""


def create_app(settings: Settings) -> FastAPI:
    """The API for `settings`; its engine opens at start-up and closes at shutdown."""
    if not settings.database_url:
        raise ValueError("create_app needs settings with a database_url")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size, application_name="sneaker-orders-api"
        )
        try:
            yield
        finally:
            await app.state.engine.dispose()

    # /docs (Swagger UI) and /redoc load their scripts and styles from this server, not from a CDN.
    app = FastAPIOffline(title="sneaker-orders", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestTiming)
    for router in (orders.router, products.router, events.router, health.router):
        app.include_router(router)
    return app
