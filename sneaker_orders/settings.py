"""The one place configuration is read: environment variables of the contract."""

from pathlib import Path

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

    external_platform_url: str | None = Field(default=None, description="base URL; unset: the demo sink")

    relay_schedule_id: str = "order-events-relay"
    relay_interval_seconds: float = Field(default=2.0, gt=0)
    relay_batch_size: int = Field(default=100, ge=1, le=1000)
    relay_max_attempts: int = Field(default=10, ge=1)
    relay_backoff_base_seconds: float = Field(default=1.0, ge=0)
    relay_backoff_max_seconds: float = Field(default=300.0, ge=0)
    relay_lease_seconds: float = Field(default=60.0, gt=0)

    admin_token: SecretStr | None = Field(default=None, description="bearer token of the ops endpoints")

    data_dir: Path = Field(
        default=Path(".data"),
        validation_alias="SNEAKER_ORDERS_DATA_DIR",
        description="where the embedded PostgreSQL and Temporal keep their state",
    )
    sink_port: int = 8081
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
