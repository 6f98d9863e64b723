"""The one place configuration is read: environment variables of the contract."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of every process; read once at start and passed down."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL (postgresql+psycopg://...); unset: embedded PostgreSQL"
    )
    database_pool_size: int = Field(default=10, ge=1, description="connections per API or worker process")

    temporal_address: str | None = Field(default=None, description="host:port; unset: embedded dev server")
    temporal_namespace: str = "default"
    temporal_task_queue: str = "order-events"
    temporal_ui_url: str = Field(default="http://127.0.0.1:8233", description="base of links into the Web UI")

    external_platform_url: str | None = Field(default=None, description="base URL; unset: the demo sink")

    relay_schedule_id: str = "order-events-relay"
    relay_interval_seconds: float = Field(default=5.0, gt=0)
    relay_batch_size: int = Field(default=100, ge=1, le=1000)
    relay_max_attempts: int = Field(default=10, ge=1)
    relay_backoff_base_seconds: float = Field(default=1.0, ge=0)
    relay_backoff_max_seconds: float = Field(default=300.0, ge=0)
    relay_lease_seconds: float = Field(default=60.0, gt=0)
    relay_lanes: int = Field(default=4, ge=1, le=32, description="batches a relay run works on at once")
    relay_delivery_concurrency: int = Field(default=64, ge=1, description="requests in flight per worker")
    relay_http_timeout_seconds: float = Field(default=5.0, gt=0)
    relay_http_transport: Literal["aiohttp", "httpx"] = "aiohttp"
    relay_shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="on SIGTERM, how long in-flight deliveries may finish before they hand back"
    )

    admin_token: SecretStr | None = Field(default=None, description="bearer token of the ops endpoints")

    data_dir: Path = Field(
        default=Path(".data"),
        validation_alias="SNEAKER_ORDERS_DATA_DIR",
        description="where the embedded PostgreSQL and Temporal keep their state",
    )
    sink_port: int = 8081
    temporal_port: int = 7233
    temporal_ui_port: int = 8233

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
