"""Order requests as the API builds them (terms from Settings), and the order a placement answered."""

from api.order_placement import OrderTerms
from db.orders.placement import PlacedOrder, PlaceOrder
from db.orders.pricing import OrderLine
from db.orders.view import OrderView
from sneaker_orders.settings import Settings

# The terms every order is placed under with default settings.
DEFAULT_TERMS = OrderTerms.from_settings(Settings.model_construct())


def order_request(customer_id: str, lines: list[OrderLine], **fields) -> PlaceOrder:
    """A PlaceOrder for `lines`, under the default settings' terms unless `fields` say otherwise."""
    return PlaceOrder(customer_id, lines, **{**vars(DEFAULT_TERMS), **fields})


def order_of(placed: PlacedOrder) -> OrderView:
    """The order a placement answered, as its JSON says."""
    return OrderView.model_validate_json(placed.json)
