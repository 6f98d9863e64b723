"""The operations endpoints: bearer token required; events listed and shown with their attempts."""

import uuid

import httpx
import pytest

from api.app import create_app
from tests.support.admin import ADMIN, ADMIN_TOKEN
from tests.support.ordering import placed
from tests.support.payments import pay
from tests.support.serving import serve


def place(api, catalog, quantity=1):
    return placed(api, (catalog.products["af1"], quantity))


# A fixed id: test ids must be the same in every pytest-xdist worker.
ANY_EVENT_ID = "6f1c2a7e-0000-4000-8000-000000000002"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN_TOKEN}"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/events"), ("GET", f"/events/{ANY_EVENT_ID}"), ("POST", f"/events/{ANY_EVENT_ID}/redrive")],
)
def test_the_ops_endpoints_refuse_requests_without_the_token(api, catalog, headers, method, path):
    response = api.request(method, path, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "UNAUTHORIZED"


def test_without_an_admin_token_configured_the_ops_endpoints_refuse_everyone(settings):
    with serve(create_app(settings.model_copy(update={"admin_token": None}))) as url:
        response = httpx.get(f"{url}/events", headers={"Authorization": "Bearer anything"})

    assert response.status_code == 401
    assert "ADMIN_TOKEN is not set" in response.json()["detail"]


def test_events_are_listed_newest_first_and_filtered(api, catalog):
    first = place(api, catalog)
    second = place(api, catalog)
    pay(api, second, payment_id="p")

    events = api.get("/events", headers=ADMIN).json()
    mine = api.get("/events", params={"order_id": first["order_id"]}, headers=ADMIN).json()
    pending = api.get("/events", params={"status": "PENDING", "limit": 2}, headers=ADMIN).json()

    assert [(e["aggregate_id"], e["event_type"]) for e in events] == [
        (str(second["order_id"]), "OrderConfirmed"),
        (str(second["order_id"]), "OrderCreated"),
        (str(first["order_id"]), "OrderCreated"),
    ]
    assert [e["aggregate_id"] for e in mine] == [str(first["order_id"])]
    assert len(pending) == 2


def test_an_event_is_shown_with_its_payload(api, catalog):
    order = place(api, catalog)
    [event] = api.get("/events", params={"order_id": order["order_id"]}, headers=ADMIN).json()

    detail = api.get(f"/events/{event['event_id']}", headers=ADMIN).json()

    assert detail["payload"] == order
    assert (detail["status"], detail["attempts"], detail["redrives"]) == ("PENDING", [], [])


def test_an_unknown_event_is_404_and_a_malformed_id_422(api, catalog):
    assert api.get(f"/events/{uuid.uuid4()}", headers=ADMIN).json()["code"] == "EVENT_NOT_FOUND"
    assert api.get("/events/not-a-uuid", headers=ADMIN).status_code == 422
    assert api.get("/events", params={"status": "LOST"}, headers=ADMIN).status_code == 422
