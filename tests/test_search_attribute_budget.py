"""The search-attribute budget counts bytes as Temporal does, so a run continues as new before the server refuses."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from workflows.search_attributes import EVENT_IDS, ORDER_IDS, SearchAttributeBudget, encoded_size

EVENT_ID_COUNT_THAT_TEMPORAL_MEASURED_AT_2341_BYTES = 60


def event_ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=number)) for number in range(count)]


def test_a_keyword_list_is_measured_as_its_compact_json():
    # Temporal 1.32 refused exactly this list with "EventIds value size 2341 exceeds size limit 2048".
    assert encoded_size(event_ids(EVENT_ID_COUNT_THAT_TEMPORAL_MEASURED_AT_2341_BYTES)) == 2341


def test_names_fit_until_one_value_would_pass_the_value_limit():
    budget = SearchAttributeBudget(value_limit_bytes=2048, total_limit_bytes=40 * 1024)
    assert budget.fits({EVENT_IDS: event_ids(52)})
    assert not budget.fits({EVENT_IDS: event_ids(53)})


def test_names_already_upserted_count_once():
    budget = SearchAttributeBudget(2048, 40 * 1024, values={EVENT_IDS.name: set(event_ids(52))})
    assert budget.fits({EVENT_IDS: event_ids(52), ORDER_IDS: ["1", "2"]})
    assert not budget.fits({EVENT_IDS: event_ids(53)})


def test_the_total_limit_binds_when_values_may_be_large():
    budget = SearchAttributeBudget(value_limit_bytes=64 * 1024, total_limit_bytes=4 * 1024)
    assert budget.fits({EVENT_IDS: event_ids(70)})
    assert not budget.fits({EVENT_IDS: event_ids(80)})


UUID_BYTES = len('"00000000-0000-0000-0000-000000000000",')


def test_the_room_left_is_as_many_items_as_still_fit_both_limits():
    budget = SearchAttributeBudget(value_limit_bytes=2048, total_limit_bytes=40 * 1024)
    room = budget.room({EVENT_IDS: UUID_BYTES})

    assert budget.fits({EVENT_IDS: event_ids(room)})
    assert room == 52  # as Temporal measured: 52 UUIDs fit in 2,048 bytes, 53 do not


def test_the_room_shrinks_as_names_are_upserted_and_reaches_zero():
    budget = SearchAttributeBudget(2048, 40 * 1024, values={EVENT_IDS.name: set(event_ids(50))})
    assert budget.room({EVENT_IDS: UUID_BYTES, ORDER_IDS: 35}) == 2
    full = SearchAttributeBudget(2048, 40 * 1024, values={EVENT_IDS.name: set(event_ids(52))})
    assert full.room({EVENT_IDS: UUID_BYTES}) == 0


def test_the_total_limit_bounds_the_room_when_values_may_be_large():
    budget = SearchAttributeBudget(value_limit_bytes=64 * 1024, total_limit_bytes=4 * 1024)
    room = budget.room({EVENT_IDS: UUID_BYTES, ORDER_IDS: 35})
    assert room == (4 * 1024 - 1024 - len("EventIds[]OrderIds[]")) // (UUID_BYTES + 35)
    assert budget.fits({EVENT_IDS: event_ids(room), ORDER_IDS: [str(10**30 + n) for n in range(room)]})


@given(st.sets(st.text(min_size=1, max_size=40), max_size=80), st.integers(min_value=2, max_value=4000))
def test_a_budget_counts_exactly_the_bytes_temporal_counts(names, limit):
    budget = SearchAttributeBudget(value_limit_bytes=limit, total_limit_bytes=10**9)

    assert budget.fits({EVENT_IDS: names}) == (encoded_size(names) <= limit)
    half = set(list(names)[: len(names) // 2])
    assert SearchAttributeBudget(limit, 10**9, values={EVENT_IDS.name: half}).fits({EVENT_IDS: names}) == (
        encoded_size(names) <= limit
    )
