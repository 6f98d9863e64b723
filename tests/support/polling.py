"""Waiting for a condition with a deadline, instead of sleeping and hoping; and watching one that must hold."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, timeout: float = 10, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll `condition` until it returns something truthy (and return it); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def holds_for(check: Callable[[], T], seconds: float, *, interval: float = 0.1) -> T:
    """Call `check` (it asserts what must stay true) again and again for `seconds`; its last result."""
    until = time.monotonic() + seconds
    while True:
        result = check()
        if time.monotonic() >= until:
            return result
        time.sleep(interval)
