"""Faults the sink can be told to show: be down, answer slowly, fail the next requests or a share of them."""

import random
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, Field


class FaultSettings(BaseModel):
    """The faults to show, as set at start or through `PUT /faults`."""

    down: bool = Field(default=False, description="drop every connection without answering")
    delay_ms: int = Field(default=0, ge=0, description="answer this much later")
    fail_rate: float = Field(default=0.0, ge=0, le=1, description="share of requests failed at random")
    fail_statuses: list[int] = Field(default=[503], min_length=1, description="statuses random failures use")
    fail_next: list[int] = Field(default=[], description="statuses to answer the next requests with, in order")
    fail_orders: list[str] = Field(
        default=[], description="orders (aggregate ids) whose events always fail, with the first of fail_statuses"
    )
    retry_after: str | None = Field(default=None, description="Retry-After header sent with every failure")


@dataclass
class Faults:
    """The live fault state."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    _next: deque[int] = field(default_factory=deque)
    _rng: random.Random = field(default_factory=random.Random)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._next = deque(settings.fail_next)

    def failure_status(self, aggregate_id: str | None = None) -> int | None:
        """The status to fail this request (for an event of `aggregate_id`) with, or None to accept it."""
        if aggregate_id is not None and aggregate_id in self.settings.fail_orders:
            return self.settings.fail_statuses[0]
        if self._next:
            return self._next.popleft()
        if self.settings.fail_rate and self._rng.random() < self.settings.fail_rate:
            return self._rng.choice(self.settings.fail_statuses)
        return None

    def describe(self) -> dict:
        return {**self.settings.model_dump(), "fail_next": list(self._next)}
