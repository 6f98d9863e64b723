"""The search-attribute budget counts bytes as Temporal does, so a run continues as new before the server refuses."""

import uuid

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
