"""Credentials never shown: URLs in any text lose their user and password before they are printed or logged.

The one redaction of the project: the start-up banner, logs (text and JSON), problem details, the
relay's platform name (and so the breaker's `describe`) and CLI output all pass through it.
"""

import re

# scheme://userinfo@ : everything up to the last "@" before the path, query, fragment or the end of the
# token (a password with a raw "@" in it included); quotes and brackets end a token inside JSON or prose.
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s\"'<>]*@")


def without_credentials(text: str) -> str:
    """`text` with the user and password taken out of every URL in it (`http://u:p@h/` -> `http://h/`)."""
    if "@" not in text:
        return text
    return _USERINFO.sub(r"\g<scheme>", text)
