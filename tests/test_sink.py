"""The demo platform itself: dedupes by Idempotency-Key, fails on request, reports gaps."""

import httpx
import pytest


def post(sink, key, sequence=1, aggregate_id="1"):
    body = {"event_id": key, "aggregate_type": "order", "aggregate_id": aggregate_id, "sequence": sequence}
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{sink.url}/events", json=body, headers=headers)


def test_the_sink_accepts_an_event_once_and_answers_409_to_a_repeat(sink):
    assert post(sink, "a").status_code == 201
    assert post(sink, "a").status_code == 409

    [received] = sink.received()
    assert (received["key"], received["deliveries"]) == ("a", 2)
    assert sink.stats()["duplicates"] == 1


def test_the_sink_refuses_an_event_without_its_key(sink):
    assert post(sink, None).status_code == 400


def test_the_sink_fails_the_next_requests_as_told_with_retry_after(sink):
    sink.set_faults(fail_next=[503, 429], retry_after="7")

    first, second, third = (post(sink, "a") for _ in range(3))

    assert [first.status_code, second.status_code, third.status_code] == [503, 429, 201]
    assert second.headers["retry-after"] == "7"
    assert sink.stats()["injected_failures"] == 2


def test_the_sink_fails_a_share_of_requests(sink):
    sink.set_faults(fail_rate=0.5, fail_statuses=[500, 502])

    statuses = [post(sink, f"k{n}").status_code for n in range(200)]

    assert set(statuses) == {201, 500, 502}
    assert 60 < statuses.count(201) < 140


def test_a_sink_that_is_down_does_not_answer(sink):
    sink.set_faults(down=True)

    with pytest.raises(httpx.TransportError):
        post(sink, "a")


def test_the_sink_reports_an_event_that_arrives_before_its_predecessor(sink):
    post(sink, "one", sequence=1, aggregate_id="7")
    post(sink, "three", sequence=3, aggregate_id="7")

    assert sink.stats()["gaps"] == [{"aggregate": "order:7", "sequence": 3, "missing": 2}]
