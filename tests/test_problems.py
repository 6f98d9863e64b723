"""Every domain error has its HTTP status and a stable, distinct code."""

import json

from api.problems import status_of
from db.errors import DomainError


def all_kinds(kind: type) -> list[type]:
    return [sub for direct in kind.__subclasses__() for sub in (direct, *all_kinds(direct))]


def test_every_kind_of_domain_error_maps_to_a_status():
    import db.orders.errors  # noqa: F401 - registers the kinds
    import db.outbox.operations  # noqa: F401

    concrete = [kind for kind in all_kinds(DomainError) if not kind.__subclasses__()]

    assert len(concrete) >= 15
    assert all(400 <= status_of(kind("detail")) < 600 for kind in concrete)
    assert len({kind.code for kind in concrete}) == len(concrete)


def test_a_problem_answered_again_is_the_same_document_with_its_own_headers_and_count():
    from api.metrics import PROBLEMS
    from api.problems import problem_response

    count = PROBLEMS.labels("400", "INSUFFICIENT_STOCK")._value.get
    before = count()
    detail = "product 7 has 0 in stock, 1 requested (http://user:secret@example.test/)"
    first = problem_response(400, "INSUFFICIENT_STOCK", detail)
    again = problem_response(400, "INSUFFICIENT_STOCK", detail, headers={"Retry-After": "2"})
    other = problem_response(400, "INSUFFICIENT_STOCK", detail.replace("0 in stock", "1 in stock"))

    assert again.body == first.body and json.loads(first.body)["detail"] == detail.replace("user:secret@", "")
    assert json.loads(other.body)["detail"].startswith("product 7 has 1 in stock")
    assert again.headers["retry-after"] == "2" and "retry-after" not in first.headers
    assert first.headers["content-type"] == "application/problem+json"
    assert int(first.headers["content-length"]) == len(first.body)
    assert count() == before + 3
