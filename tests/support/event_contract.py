"""The events' published contract as the tests hold the relay to it: `/asyncapi.json` and every delivered event.

`EventContract.problems(body)` is what is wrong with one delivered body: where it breaks its event
type's message schema, and every field the document does not describe (a field added to the code
without the document; the document allows new optional fields, but only once it names them).
Events a test wrote straight into the outbox for orders that do not exist carry stub payloads marked
`synthetic` (tests/support/outbox_views.py, outbox_fill.py): `check` leaves them out.
"""

import json
from functools import cache
from pathlib import Path

import jsonschema_rs

from api.routes.asyncapi import asyncapi_document

# The official AsyncAPI 3.0.0 JSON Schema (tests/asyncapi/README.md says where it comes from).
ASYNCAPI_3_SCHEMA = Path(__file__).parent.parent / "asyncapi" / "asyncapi-3.0.0.schema.json"


def asyncapi_errors(document: dict) -> list[str]:
    """Where `document` breaks the AsyncAPI 3.0.0 schema (none: it is a valid AsyncAPI 3.0 document)."""
    validator = jsonschema_rs.Draft7Validator(json.loads(ASYNCAPI_3_SCHEMA.read_text()), validate_formats=True)
    return [f"{'/'.join(map(str, error.instance_path))}: {error.message}" for error in validator.iter_errors(document)]


def resolve(document: dict, reference: str) -> dict:
    """The part of `document` that a local `$ref` (`#/a/b`) names."""
    node = document
    for part in reference.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


class EventContract:
    """Validators of delivered bodies, one per message (event type) of an AsyncAPI document."""

    def __init__(self, document: dict) -> None:
        self.document = document
        self._validators = {
            name: jsonschema_rs.Draft7Validator(
                # A draft-7 $ref at the root replaces its siblings: the document's other parts are only there to be
                # referred to (#/components/...).
                {**document, "$ref": f"#/components/messages/{name}/payload"},
                validate_formats=True,
            )
            for name in document["components"]["messages"]
        }

    def problems(self, body: dict) -> list[str]:
        """What is wrong with one delivered body: schema errors of its message, and fields the document omits."""
        event_type = body.get("event_type")
        validator = self._validators.get(event_type)
        if validator is None:
            return [f"event_type {event_type!r} is no message of the document"]
        errors = [
            f"{event_type} {'/'.join(map(str, error.instance_path)) or '(body)'}: {error.message}"
            for error in validator.iter_errors(body)
        ]
        return errors + self._undocumented(body)

    def _undocumented(self, body: dict) -> list[str]:
        schemas = self.document["components"]["schemas"]
        found = _extra_fields(body, schemas["EventEnvelope"], "")
        payload = body.get("payload")
        if isinstance(payload, dict):
            found += _extra_fields(payload, schemas["Order"], "payload/")
            for index, item in enumerate(payload.get("items") or []):
                found += _extra_fields(item, schemas["OrderItem"], f"payload/items/{index}/")
        return [f"{body.get('event_type')} {path}: not in the document" for path in found]

    def check(self, bodies: list[dict]) -> None:
        """Fail (AssertionError) naming every problem of every body but the synthetic ones."""
        problems = [
            f"{body.get('event_id')}: {problem}"
            for body in bodies
            if not is_synthetic(body)
            for problem in self.problems(body)
        ]
        assert not problems, "delivered events break /asyncapi.json:\n  " + "\n  ".join(problems)


def is_synthetic(body: dict) -> bool:
    """An event a test wrote straight into the outbox for an order that does not exist (its payload is a stub)."""
    payload = body.get("payload")
    return isinstance(payload, dict) and payload.get("synthetic") is True


def _extra_fields(value, schema: dict, prefix: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [prefix + name for name in value if name not in schema["properties"]]


@cache
def published_contract() -> EventContract:
    """The contract of the document the API serves."""
    return EventContract(asyncapi_document())
