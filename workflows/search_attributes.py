"""The custom search attributes the scheduled workflows upsert, and the budget that keeps them within Temporal's limits.

`temporal workflow list -q "OrderIds = '42'"` finds every relay run in which order 42 had a problem
(an attempt retried, held or failed), `EventIds` the same by event; `DeliveryOutcomes` holds the
distinct outcomes of a run's attempts (`SENT`, `RETRY`, `HELD`, `FAILED`) and the same per destination
(`warehouse:FAILED`): a stock server allows three KeywordList attributes, so the destination is named
there rather than in a fourth. Temporal refuses (and
fails the run) when one attribute's value or all of a run's attributes exceed its size limits, so a
workflow asks the budget before it adds a name; a name that does not fit is left out (and the run
says so), never a reason to continue as new.

Deterministic and free of I/O: workflows import it directly.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from temporalio import workflow
from temporalio.common import SearchAttributeKey

ORDER_IDS = SearchAttributeKey.for_keyword_list("OrderIds")
EVENT_IDS = SearchAttributeKey.for_keyword_list("EventIds")
DELIVERY_OUTCOMES = SearchAttributeKey.for_keyword_list("DeliveryOutcomes")
CUSTOM_SEARCH_ATTRIBUTES = (ORDER_IDS, EVENT_IDS, DELIVERY_OUTCOMES)

# Temporal's default search-attribute size limits (per value and per run; Temporal Cloud's too): the
# project never raises them and runs within them.
DEFAULT_VALUE_LIMIT_BYTES = 2 * 1024
DEFAULT_TOTAL_LIMIT_BYTES = 40 * 1024

# Room left for what Temporal counts beyond our values (the names, its own attributes).
TOTAL_SIZE_MARGIN_BYTES = 1024


def encoded_size(values: Iterable[str]) -> int:
    """The bytes Temporal counts for a KeywordList value: its compact JSON."""
    return len(json.dumps(sorted(values), separators=(",", ":")).encode())


@dataclass
class SearchAttributeBudget:
    """What a run has upserted so far, and whether more names still fit the server's limits.

    Sizes are kept as names arrive, so asking costs the new names only, not the thousands a run holds.
    """

    value_limit_bytes: int
    total_limit_bytes: int
    values: dict[str, set[str]] = field(default_factory=dict)
    _element_bytes: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _unsent: dict[str, SearchAttributeKey] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for name, values in self.values.items():
            self._element_bytes[name] = sum(_element_size(value) for value in values)

    def fits(self, additions: dict[SearchAttributeKey, Iterable[str]]) -> bool:
        """Whether the run's attributes, with `additions`, stay within both limits."""
        sizes = self._sizes(additions)
        total = sum(len(name) + size for name, size in sizes.items())
        return (
            all(size <= self.value_limit_bytes for size in sizes.values())
            and total <= self.total_limit_bytes - TOTAL_SIZE_MARGIN_BYTES
        )

    def room(
        self, item_bytes: dict[SearchAttributeKey, int], always: dict[SearchAttributeKey, Iterable[str]] | None = None
    ) -> int:
        """How many more items fit, when each adds at most `item_bytes[key]` bytes to key's value (besides `always`).

        A relay run asks this before each claim, so that no activity delivers more events than the run can name.
        """
        sizes = self._sizes(always or {})
        for key in item_bytes:
            sizes.setdefault(key.name, encoded_size(()))
        total = sum(len(name) + size for name, size in sizes.items())
        fits = [(self.value_limit_bytes - sizes[key.name]) // per_item for key, per_item in item_bytes.items()]
        fits.append((self.total_limit_bytes - TOTAL_SIZE_MARGIN_BYTES - total) // sum(item_bytes.values()))
        return max(0, min(fits))

    def upsert(self, additions: dict[SearchAttributeKey, Iterable[str]]) -> None:
        """Add `additions` to the run's attributes and upsert the attributes that changed."""
        self.add(additions)
        self.flush()

    def add(self, additions: dict[SearchAttributeKey, Iterable[str]]) -> None:
        """Count `additions` as the run's, to be upserted by the next `flush` (each upsert sends whole lists)."""
        for key, values in additions.items():
            known = self.values.setdefault(key.name, set())
            new = set(values) - known
            if new:
                known.update(new)
                self._element_bytes[key.name] = self._element_bytes.get(key.name, 0) + sum(map(_element_size, new))
                self._unsent[key.name] = key

    @property
    def unsent(self) -> bool:
        """Whether names were added since the last flush."""
        return bool(self._unsent)

    def flush(self) -> None:
        """Upsert every attribute that gained names since the last flush."""
        if self._unsent:
            workflow.upsert_search_attributes(
                [key.value_set(sorted(self.values[name])) for name, key in self._unsent.items()]
            )
            self._unsent.clear()

    def named_bytes(self) -> int:
        """The bytes of all the run's names: what an upsert of every attribute would send."""
        return sum(self._element_bytes.values())

    def _sizes(self, additions: dict[SearchAttributeKey, Iterable[str]]) -> dict[str, int]:
        """Each attribute's encoded size, as it would be with `additions`."""
        counts = {name: len(values) for name, values in self.values.items()}
        element_bytes = dict(self._element_bytes)
        for key, values in additions.items():
            new = set(values) - self.values.get(key.name, set())
            counts[key.name] = counts.get(key.name, 0) + len(new)
            element_bytes[key.name] = element_bytes.get(key.name, 0) + sum(map(_element_size, new))
        # A compact JSON list: brackets, the quoted elements, a comma between each two.
        return {name: 2 + element_bytes.get(name, 0) + max(0, count - 1) for name, count in counts.items()}


def _element_size(value: str) -> int:
    return len(json.dumps(value).encode())
