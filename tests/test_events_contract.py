"""The events' published contract: `GET /asyncapi.json` is a valid AsyncAPI 3.0 document of what the platform receives,
and the code cannot change an event without the document changing with it."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from activities.platform import SCHEMA_VERSION, platform_body
from api.routes.asyncapi import ASYNCAPI_FILE, asyncapi_document
from db.orders.view import OrderItemView, OrderView
from db.outbox.claims import LeasedEvent
from db.statuses import EVENT_TYPES
from tests.support.event_contract import EventContract, asyncapi_errors, published_contract, resolve
from tests.support.ordering import placed
from tests.support.payments import pay

MOMENT = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def an_order(**changes) -> OrderView:
    order = OrderView(
        order_id=42,
        status="CREATED",
        customer_id="c-1",
        coupon_id=None,
        subtotal=219_000,
        discount=0,
        total=219_000,
        items=[OrderItemView(product_id=7, quantity=1, unit_price=219_000, line_total=219_000)],
        created_at=MOMENT,
        expires_at=MOMENT,
    )
    return order.model_copy(update=changes)


def delivered_body(event_type: str, order: OrderView, sequence: int = 1) -> dict:
    """The body the relay sends for `event_type` of `order`, built by the relay's own code."""
    event = LeasedEvent(
        id=1,
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        aggregate_type="order",
        aggregate_id=str(order.order_id),
        sequence=sequence,
        occurred_at=MOMENT,
        payload_json=order.model_dump_json(),
        attempt=1,
    )
    return json.loads(platform_body(event))


def test_asyncapi_json_is_served_without_a_token_as_kept_in_the_repository(anonymous):
    response = anonymous.get("/asyncapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == ASYNCAPI_FILE.read_bytes()
    assert response.json()["asyncapi"] == "3.0.0"


def test_asyncapi_json_validates_against_the_official_asyncapi_3_schema(anonymous):
    assert asyncapi_errors(anonymous.get("/asyncapi.json").json()) == []


def test_the_official_schema_refuses_a_document_that_is_not_asyncapi_3():
    broken = asyncapi_document()
    broken["operations"]["deliverOrderEvent"]["action"] = "publish"  # AsyncAPI 2's word, gone in 3.0
    del broken["info"]["version"]

    errors = asyncapi_errors(broken)

    assert any(error.startswith("operations/deliverOrderEvent") for error in errors), errors
    assert any(error.startswith("info") for error in errors), errors


def test_the_openapi_schema_lists_asyncapi_json(anonymous):
    operation = anonymous.get("/openapi.json").json()["paths"]["/asyncapi.json"]["get"]

    assert "application/json" in operation["responses"]["200"]["content"]
    assert "security" not in operation


def test_one_message_per_event_type_named_by_it():
    document = asyncapi_document()
    messages = document["components"]["messages"]
    channel = document["channels"]["events"]
    operation = document["operations"]["deliverOrderEvent"]

    assert set(messages) == set(EVENT_TYPES)
    assert all(messages[name]["name"] == name for name in EVENT_TYPES)
    assert set(channel["messages"]) == set(EVENT_TYPES)
    assert [resolve(document, ref["$ref"]) for ref in operation["messages"]] == [
        channel["messages"][name] for name in EVENT_TYPES
    ]
    assert (channel["address"], operation["action"], operation["bindings"]["http"]["method"]) == (
        "/events",
        "send",
        "POST",
    )


def test_the_document_is_the_schema_version_the_relay_sends_and_says_what_needs_a_new_one():
    document = asyncapi_document()
    envelope = document["components"]["schemas"]["EventEnvelope"]
    description = document["info"]["description"]

    assert envelope["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert document["info"]["version"].split(".")[0] == str(SCHEMA_VERSION)
    assert "without a new `schema_version`" in description and "new optional field" in description
    assert "needs a new `schema_version`" in description and "removing or renaming a field" in description


@pytest.mark.parametrize(
    ("event_type", "changes"),
    [
        ("OrderCreated", {}),
        ("OrderConfirmed", {"status": "CONFIRMED", "payment_id": "pay-1", "confirmed_at": MOMENT}),
        ("OrderCancelled", {"status": "CANCELLED", "cancelled_at": MOMENT}),
        ("OrderExpired", {"status": "EXPIRED", "expired_at": MOMENT}),
    ],
)
def test_what_the_relay_sends_for_each_event_type_follows_its_message(event_type, changes):
    body = delivered_body(event_type, an_order(**changes))

    assert published_contract().problems(body) == []


def test_an_event_that_breaks_its_message_is_told_apart():
    body = delivered_body("OrderConfirmed", an_order())  # still CREATED, no payment_id

    problems = published_contract().problems(body)

    assert any("payload/status" in problem for problem in problems), problems
    assert any("payload/payment_id" in problem for problem in problems), problems


def _shape(schema: dict, root: dict) -> dict:
    """What a JSON Schema says of a value's structure (types, formats, enumerations, fields), without its prose."""
    if "$ref" in schema:
        return _shape(resolve(root, schema["$ref"]), root)
    if "anyOf" in schema:
        shapes = [_shape(option, root) for option in schema["anyOf"]]
        merged = {key: value for shape in shapes for key, value in shape.items() if key != "types"}
        return {**merged, "types": sorted({kind for shape in shapes for kind in shape["types"]})}
    kinds = schema.get("type", [])
    shape = {"types": sorted([kinds] if isinstance(kinds, str) else kinds)}
    for keyword in ("format", "enum"):
        if keyword in schema:
            shape[keyword] = sorted(schema[keyword]) if keyword == "enum" else schema[keyword]
    if "properties" in schema:
        shape["properties"] = {name: _shape(field, root) for name, field in schema["properties"].items()}
        shape["required"] = sorted(schema.get("required", []))
    if "items" in schema:
        shape["items"] = _shape(schema["items"], root)
    return shape


def _code_shape(model: type[OrderView]) -> dict:
    """The shape of `model`'s JSON as the code writes it: every field present (model_dump_json keeps the nulls)."""
    schema = model.model_json_schema(mode="serialization")
    for part in [schema, *schema.get("$defs", {}).values()]:
        part["required"] = list(part["properties"])
    return _shape(schema, schema)


def _document_shape(document: dict, name: str) -> dict:
    return _shape(document["components"]["schemas"][name], document)


def test_the_documented_payload_is_the_order_view_the_events_carry():
    assert _document_shape(asyncapi_document(), "Order") == _code_shape(OrderView)


def test_a_payload_changed_without_the_document_fails_the_comparison():
    class OrderViewWithANewField(OrderView):
        gift_wrapped: bool = False

    class OrderViewWithAnotherType(OrderView):
        total: str  # type: ignore[assignment]

    documented = _document_shape(asyncapi_document(), "Order")

    assert documented != _code_shape(OrderViewWithANewField)
    assert documented != _code_shape(OrderViewWithAnotherType)
    body = delivered_body("OrderCreated", an_order())
    body["payload"]["gift_wrapped"] = False
    assert published_contract().problems(body) == ["OrderCreated payload/gift_wrapped: not in the document"]


def test_the_documented_envelope_is_what_the_relay_sends():
    document = asyncapi_document()
    envelope = document["components"]["schemas"]["EventEnvelope"]
    body = delivered_body("OrderCreated", an_order())

    assert list(body) == list(envelope["properties"]) == envelope["required"]
    assert EventContract(document).problems(body) == []


def test_every_event_of_an_order_s_life_reaches_the_platform_as_the_document_says(api, catalog, sink, relay):
    relay.start_worker()
    paid = placed(api, (catalog.products["af1"], 1))
    assert pay(api, paid).status_code == 200
    cancelled = placed(api, (catalog.products["af1"], 1))
    assert api.post(f"/orders/{cancelled['order_id']}/cancel").status_code == 200

    received = sink.wait_for_events(4)  # checks every body against /asyncapi.json

    assert sorted(event["body"]["event_type"] for event in received) == sorted(
        ["OrderCreated", "OrderConfirmed", "OrderCreated", "OrderCancelled"]
    )
    assert published_contract().problems(received[0]["body"]) == []


def test_only_the_events_a_test_wrote_for_orders_that_do_not_exist_are_left_out_of_the_check():
    stub = {"event_id": "x", "event_type": "OrderCreated", "payload": {"order_id": "poison", "synthetic": True}}
    unmarked = {**stub, "payload": {"order_id": "poison"}}

    published_contract().check([stub])
    with pytest.raises(AssertionError, match="delivered events break /asyncapi.json"):
        published_contract().check([unmarked])
