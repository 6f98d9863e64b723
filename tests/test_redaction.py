"""Credentials never printed: one redaction takes user and password out of every URL shown."""

import logging
import sys

import pytest

from sneaker_orders.logging_setup import JsonLines, RedactedText
from sneaker_orders.redaction import without_credentials

PASSWORD = "s3cret"


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("http://user:s3cret@platform:8081/events", "http://platform:8081/events"),
        (
            "postgresql+psycopg://shop:s3cret@db:5432/shop?sslmode=require",
            "postgresql+psycopg://db:5432/shop?sslmode=require",
        ),
        ("https://s3cret@idp.example/jwks", "https://idp.example/jwks"),
        ("http://user:p@s3cret@platform/", "http://platform/"),  # a raw "@" in the password
        ("failed: 'http://u:s3cret@h:1/events' refused", "failed: 'http://h:1/events' refused"),
        ('{"url": "http://u:s3cret@h/", "email": "a@b.c"}', '{"url": "http://h/", "email": "a@b.c"}'),
        ("write to a@b.c or http://h/x?to=a@b.c", "write to a@b.c or http://h/x?to=a@b.c"),
        ("no url here", "no url here"),
    ],
)
def test_urls_are_shown_without_user_and_password(shown, expected):
    assert without_credentials(shown) == expected


@pytest.mark.parametrize("formatter", [RedactedText("%(message)s"), JsonLines()], ids=["text", "json"])
def test_log_lines_show_urls_without_credentials(formatter):
    record = logging.makeLogRecord(
        {"msg": "cannot reach %s", "args": (f"http://relay:{PASSWORD}@platform/events",), "levelname": "ERROR"}
    )
    try:
        raise ConnectionError(f"connect to postgresql://shop:{PASSWORD}@db/shop failed")
    except ConnectionError:
        record.exc_info = sys.exc_info()

    line = formatter.format(record)

    assert PASSWORD not in line
    assert "http://platform/events" in line and "postgresql://db/shop" in line
