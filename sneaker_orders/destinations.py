"""Where the relay delivers: named destinations, from DESTINATIONS_FILE or today's one `platform`.

DESTINATIONS_FILE is JSON (a list, or `{"destinations": [...]}`) or TOML (`[[destinations]]` tables);
each destination has a `name`, a `url` (events are POSTed to `{url}/events`), and optionally a bearer
`token`, a Standard Webhooks `signing_secret` and the `event_types` it takes (unset: every type). Without
the file, EXTERNAL_PLATFORM_URL, PLATFORM_TOKEN and PLATFORM_SIGNING_SECRET make one destination named
`platform`.
"""

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator

DEFAULT_DESTINATION = "platform"


class Destination(BaseModel):
    """One consumer of the order events: its name (metrics, breakers, the CLI use it), address and credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="lower-case letters, digits, - and _")
    url: str = Field(pattern=r"^https?://", description="base URL: events are POSTed to {url}/events")
    token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    event_types: tuple[str, ...] | None = Field(default=None, min_length=1)


class _DestinationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destinations: list[Destination] = Field(min_length=1)

    @field_validator("destinations")
    @classmethod
    def _names_unique(cls, destinations: list[Destination]) -> list[Destination]:
        names = [destination.name for destination in destinations]
        if repeated := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"destination names must be unique: {', '.join(repeated)} repeated")
        return destinations


class DestinationsFileError(ValueError):
    """DESTINATIONS_FILE cannot be read or does not describe destinations; the message says where and why."""


def read_destinations_file(path: Path) -> tuple[Destination, ...]:
    """The destinations DESTINATIONS_FILE names (JSON or TOML, by its suffix: `.toml` is TOML)."""
    try:
        text = path.read_text(encoding="utf-8")
        document = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as failure:
        raise DestinationsFileError(f"{path}: {failure}") from failure
    if isinstance(document, list):
        document = {"destinations": document}
    try:
        return tuple(TypeAdapter(_DestinationsFile).validate_python(document).destinations)
    except ValidationError as failure:
        raise DestinationsFileError(f"{path}: {failure}") from failure
