"""What the sink has received: each event once by Idempotency-Key, in arrival order, and any gap per order."""

import time
from dataclasses import dataclass, field


@dataclass
class ReceivedEvent:
    """An event as it first arrived, and how many times it arrived."""

    key: str
    body: dict
    received_at: float  # unix time, seconds
    deliveries: int = 1
    signature_verified: bool = False
    traceparent: str | None = None  # of the delivery that was accepted (W3C), when the relay traces


@dataclass
class SinkState:
    """Everything received since the last reset."""

    events: dict[str, ReceivedEvent] = field(default_factory=dict)
    requests: int = 0
    duplicates: int = 0
    injected_failures: int = 0
    refused: int = 0  # requests without the expected token or signature (401)
    # Per aggregate: the sequences seen, and those that arrived before their predecessor.
    _sequences: dict[str, set[int]] = field(default_factory=dict)
    _out_of_order: list[dict] = field(default_factory=list)

    def clear(self) -> None:
        """Forget everything."""
        self.__init__()

    def receive(self, key: str, body: dict, *, verified: bool = False, traceparent: str | None = None) -> bool:
        """Take an event (its signature `verified`, or not checked; the trace it came in); False if its key was seen
        before (a duplicate)."""
        seen = self.events.get(key)
        if seen is not None:
            seen.deliveries += 1
            self.duplicates += 1
            return False
        self.events[key] = ReceivedEvent(key, body, time.time(), signature_verified=verified, traceparent=traceparent)
        aggregate = f"{body.get('aggregate_type')}:{body.get('aggregate_id')}"
        sequence = body.get("sequence")
        sequences = self._sequences.setdefault(aggregate, set())
        if isinstance(sequence, int) and sequence > 1 and sequence - 1 not in sequences:
            self._out_of_order.append({"aggregate": aggregate, "sequence": sequence, "missing": sequence - 1})
        sequences.add(sequence)
        return True

    def stats(self) -> dict:
        """Counters, and every arrival that came before its predecessor (a gap)."""
        return {
            "requests": self.requests,
            "received": len(self.events),
            "duplicates": self.duplicates,
            "injected_failures": self.injected_failures,
            "refused": self.refused,
            "schema_versions": sorted({str(event.body.get("schema_version")) for event in self.events.values()}),
            "gaps": list(self._out_of_order),
        }

    def listing(self, aggregate_id: str | None = None) -> list[dict]:
        """Received events in arrival order, optionally of one aggregate."""
        return [
            {
                "key": event.key,
                "schema_version": event.body.get("schema_version"),
                "received_at": event.received_at,
                "deliveries": event.deliveries,
                "signature_verified": event.signature_verified,
                "traceparent": event.traceparent,
                "body": event.body,
            }
            for event in self.events.values()
            if aggregate_id is None or str(event.body.get("aggregate_id")) == aggregate_id
        ]
