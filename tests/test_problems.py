"""Every domain error has its HTTP status and a stable, distinct code."""

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
