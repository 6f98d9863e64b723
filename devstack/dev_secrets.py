"""Development secrets: generated once under the data directory for whatever the environment leaves unset.

`make run` uses them, and so do `sneaker-orders token`, `pay` and `events` from another terminal, so
that a demo needs no variable set. A production deployment sets every one of them itself.
"""

import base64
import json
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from sneaker_orders.settings import Settings

SECRETS_FILE = "secrets.json"
# The settings a development secret stands in for; each is kept, and read from the environment, under its name.
SECRET_SETTINGS = ("admin_token", "auth_jwt_secret", "payment_webhook_secret")


def _new_secrets() -> dict[str, str]:
    return {
        "admin_token": secrets.token_urlsafe(32),
        "auth_jwt_secret": secrets.token_urlsafe(32),
        # Standard Webhooks secrets are `whsec_` and the base64 of the key.
        "payment_webhook_secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }


def dev_secrets_path(settings: Settings) -> Path:
    """Where the development secrets of this data directory live."""
    return settings.data_dir / SECRETS_FILE


def load_or_create_dev_secrets(settings: Settings) -> dict[str, str]:
    """The development secrets of the data directory, created (readable by the owner only) on first use."""
    path = dev_secrets_path(settings)
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = _new_secrets()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(generated, file, indent=2)
    return generated


def with_dev_secrets(settings: Settings) -> Settings:
    """`settings` with every secret the environment left unset taken from the development secrets."""
    missing = [name for name in SECRET_SETTINGS if getattr(settings, name) is None]
    if not missing:
        return settings
    stored = load_or_create_dev_secrets(settings)
    return settings.model_copy(update={name: SecretStr(stored[name]) for name in missing})


def secrets_environment(settings: Settings) -> dict[str, str]:
    """The secrets of `settings` as the environment variables child processes read."""
    return {
        name.upper(): getattr(settings, name).get_secret_value()
        for name in SECRET_SETTINGS
        if getattr(settings, name) is not None
    }
