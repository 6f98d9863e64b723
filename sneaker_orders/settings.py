"""The one place configuration is read: environment variables of the contract."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sneaker_orders.destinations import DEFAULT_DESTINATION, Destination, read_destinations_file

ADMIN_TOKEN_MIN_LENGTH = 32


class Settings(BaseSettings):
    """Configuration of every process; read once at start and passed down."""

    # An empty variable (as docker compose passes an unset ${VAR:-}) counts as unset.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True, env_ignore_empty=True)

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (postgresql+psycopg://...); unset: embedded PostgreSQL"
    )
    database_pool_size: int = Field(default=10, ge=1, description="connections per API or worker process")
    database_pool_max_overflow: int = Field(
        default=10, ge=0, description="connections opened beyond the pool's size under load, closed when returned"
    )
    database_pool_timeout_seconds: float = Field(
        default=5.0, gt=0, description="how long a request waits for a pooled connection before a 503"
    )
    database_lock_timeout_ms: int = Field(
        default=2000, ge=1, description="lock_timeout of every transaction: a held row lock fails only its waiters"
    )
    database_statement_timeout_ms: int = Field(
        default=10000, ge=1, description="statement_timeout of every transaction"
    )

    temporal_address: str | None = Field(default=None, description="host:port; unset: embedded dev server")
    temporal_namespace: str = "default"
    temporal_task_queue: str = "order-events"
    temporal_ui_url: str = Field(default="http://127.0.0.1:8233", description="base of links into the Web UI")

    external_platform_url: str | None = Field(default=None, description="base URL; unset: the demo sink")
    platform_token: SecretStr | None = Field(default=None, description="bearer token sent to the platform")
    platform_signing_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret (whsec_...) deliveries are signed with"
    )

    destinations_file: Path | None = Field(
        default=None, description="JSON or TOML list of destinations; unset: one `platform` from EXTERNAL_PLATFORM_*"
    )

    relay_schedule_id: str = "order-events-relay"
    relay_interval_seconds: float = Field(default=5.0, gt=0)
    relay_run_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a relay run lasts about this long, ending just before a schedule tick (idle: 3600/this runs/h)",
    )
    relay_batch_size: int = Field(default=100, ge=1, le=1000)
    relay_max_attempts: int = Field(default=10, ge=1)
    relay_backoff_base_seconds: float = Field(default=1.0, ge=0)
    relay_backoff_max_seconds: float = Field(default=300.0, ge=0)
    relay_lease_seconds: float = Field(default=60.0, gt=0)
    relay_lanes: int = Field(default=4, ge=1, le=32, description="batches a relay run works on at once")
    relay_delivery_concurrency: int = Field(default=64, ge=1, description="requests in flight per worker")
    relay_http_timeout_seconds: float = Field(default=5.0, gt=0)
    relay_http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    relay_breaker_failures: int = Field(
        default=5,
        ge=1,
        description="the fewest platform failures (no answer, 5xx, 429, 4xx) in a row that open the breaker",
    )
    relay_breaker_failure_ratio: float = Field(
        default=0.9, gt=0, le=1, description="the breaker opens when at least this share of the window's answers failed"
    )
    relay_breaker_window_seconds: float = Field(
        default=1.0, gt=0, description="the breaker judges the platform by the answers of the last this many seconds"
    )
    relay_breaker_probe_seconds: float = Field(
        default=2.0, gt=0, description="while the breaker is open, one probe request this often (or after Retry-After)"
    )
    relay_breaker_drain_batch: int = Field(
        default=5000, ge=1, description="events made due per statement when the breaker closes"
    )
    relay_shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="on SIGTERM, how long in-flight deliveries may finish before they hand back"
    )

    order_payment_ttl_seconds: int = Field(default=900, ge=1, description="an unpaid order expires this long after")
    order_expiry_schedule_id: str = "order-expiry"
    order_expiry_interval_seconds: float = Field(default=10.0, gt=0)
    retention_schedule_id: str = "outbox-retention"
    retention_interval_seconds: float = Field(default=3600.0, gt=0, description="cadence of the retention schedule")
    outbox_retention_days: float = Field(default=7.0, gt=0, description="SENT events older than this are deleted")
    idempotency_key_ttl_hours: float = Field(default=24.0, gt=0)

    max_unpaid_orders_per_customer: int = Field(default=3, ge=1)
    max_pairs_per_line: int = Field(default=10, ge=1, description="pairs of one product in one order: more is 400")
    max_pairs_per_order: int = Field(default=20, ge=1, description="pairs in one order, all lines: more is 400")
    max_unpaid_pairs_per_customer: int = Field(
        default=20, ge=1, description="pairs one customer holds in CREATED orders, all SKUs: more is 400"
    )
    cancel_cooldown_seconds: float = Field(
        default=30.0, ge=0, description="a product the customer cancelled cannot be ordered by them again this long"
    )
    customer_rate_limit_per_second: float = Field(
        default=10.0, gt=0, description="requests per customer per second, beyond a burst: 429 RATE_LIMITED"
    )
    customer_rate_limit_burst: int = Field(default=20, ge=1, description="requests a customer may send at once")
    sold_out_memory_seconds: float = Field(
        default=0.5,
        ge=0,
        le=1.0,
        description="how long a stock seen short refuses orders from memory at most (returns are heard at once)",
    )
    max_request_bytes: int = Field(default=65536, ge=1024, description="larger request bodies get 413")
    max_request_header_bytes: int = Field(
        default=16384, ge=1024, description="request line and headers larger than this: 431, connection closed"
    )
    max_request_headers: int = Field(default=100, ge=8, description="more header lines than this: 431")
    request_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a client slower than this to send its request line and headers is cut off"
    )
    request_body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a client slower than this to send its body gets 408"
    )

    admin_token: SecretStr | None = Field(default=None, description="bearer token of the ops endpoints")
    auth_jwt_secret: SecretStr | None = Field(default=None, description="HS256 key of customer tokens (development)")
    auth_jwks_url: str | None = Field(default=None, description="JWKS of the RS256/ES256 keys of customer tokens")
    auth_jwks_timeout_seconds: float = Field(
        default=5.0, gt=0, description="a fetch of AUTH_JWKS_URL's key set that takes longer is given up"
    )
    auth_jwks_refresh_seconds: float = Field(
        default=30.0, ge=0, description="AUTH_JWKS_URL's key set is fetched at most once per this many seconds"
    )
    auth_public_key: str | None = Field(default=None, description="PEM public key of customer tokens")
    auth_issuer: str | None = Field(default=None, description="required `iss` of customer tokens")
    auth_audience: str | None = Field(default=None, description="required `aud` of customer tokens")
    payment_webhook_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret (whsec_...) of the payment provider"
    )

    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token the API's /metrics requires; unset: /metrics is open"
    )
    metrics_outbox_interval_seconds: float = Field(
        default=5.0, ge=0, description="the API's outbox gauges are read from the database at most this often"
    )
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535, description="the worker's /metrics on 127.0.0.1")
    log_format: Literal["text", "json"] = "text"

    # OpenTelemetry's standard variables that decide whether this process traces at all (see
    # sneaker_orders/tracing.py); the SDK reads the others (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER,
    # OTEL_BSP_*, the exporter's headers, timeout, compression...) itself.
    otel_sdk_disabled: bool = Field(default=False, description="true: no tracing, whatever else is set")
    otel_traces_exporter: str | None = Field(default=None, description="otlp, console, both (otlp,console) or none")
    otel_exporter_otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP base URL; set: tracing on")
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP URL of traces (.../v1/traces); set: tracing on"
    )
    otel_exporter_otlp_protocol: str | None = Field(default=None, description="only http/protobuf is supported")
    otel_exporter_otlp_traces_protocol: str | None = Field(default=None, description="only http/protobuf")
    otel_python_fastapi_excluded_urls: str = Field(
        default="healthz,readyz,metrics", description="API paths (regular expressions, comma-separated) not traced"
    )

    data_dir: Path = Field(
        default=Path(".data"),
        validation_alias="SNEAKER_ORDERS_DATA_DIR",
        description="where the embedded PostgreSQL and Temporal keep their state",
    )
    sink_port: int = 8081
    api_port: int = Field(default=8000, description="where `sneaker-orders run` serves the API")
    temporal_port: int = 7233
    temporal_ui_port: int = 8233

    @field_validator("admin_token")
    @classmethod
    def _admin_token_long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < ADMIN_TOKEN_MIN_LENGTH:
            raise ValueError(f"ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN_LENGTH} characters long")
        return token

    @field_validator("destinations_file")
    @classmethod
    def _destinations_file_readable(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_destinations_file(path)  # refused at start, with the reason, rather than when first used
        return path

    @property
    def temporal_target(self) -> str:
        """The Temporal frontend to use: TEMPORAL_ADDRESS, or the embedded dev server of `make run`."""
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    def temporal_run_url(self, workflow_id: str, run_id: str) -> str:
        """The Web UI page of one workflow run."""
        return f"{self.temporal_ui_url}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}/{run_id}/history"

    @property
    def platform_url(self) -> str:
        """The platform to deliver to: EXTERNAL_PLATFORM_URL, or the demo sink of `make run`."""
        return self.external_platform_url or f"http://127.0.0.1:{self.sink_port}"

    def destinations(self) -> tuple[Destination, ...]:
        """Where events go: DESTINATIONS_FILE's destinations, or one `platform` of EXTERNAL_PLATFORM_* / PLATFORM_*."""
        if self.destinations_file is not None:
            return read_destinations_file(self.destinations_file)
        return (
            Destination(
                name=DEFAULT_DESTINATION,
                url=self.platform_url,
                token=self.platform_token,
                signing_secret=self.platform_signing_secret,
            ),
        )
