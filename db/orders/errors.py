"""Domain errors of orders, each with the stable code clients see; `api/` maps them to HTTP."""

from db.errors import DomainError


class OrderError(DomainError):
    """Base of every error the order domain raises on purpose."""

    code = "ORDER_ERROR"


class OrderRejected(OrderError):
    """A business rule refused the request; nothing was written."""


class ProductNotFound(OrderRejected):
    code = "PRODUCT_NOT_FOUND"


class ProductUnavailable(OrderRejected):
    code = "PRODUCT_UNAVAILABLE"


class InsufficientStock(OrderRejected):
    code = "INSUFFICIENT_STOCK"


class PurchaseLimitExceeded(OrderRejected):
    """The customer's pairs of a SKU across CREATED and CONFIRMED orders would exceed its max_per_customer."""

    code = "PURCHASE_LIMIT_EXCEEDED"


class LinePairsExceeded(OrderRejected):
    """A line asks for more pairs of one product than MAX_PAIRS_PER_LINE."""

    code = "LINE_PAIRS_EXCEEDED"


class OrderPairsExceeded(OrderRejected):
    """The order's lines ask for more pairs than MAX_PAIRS_PER_ORDER."""

    code = "ORDER_PAIRS_EXCEEDED"


class UnpaidPairsExceeded(OrderRejected):
    """The customer would hold more pairs in CREATED orders, all SKUs, than MAX_UNPAID_PAIRS_PER_CUSTOMER."""

    code = "UNPAID_PAIRS_EXCEEDED"


class RecentlyCancelled(OrderRejected):
    """The customer cancelled an order of this product less than CANCEL_COOLDOWN_SECONDS ago."""

    code = "RECENTLY_CANCELLED"


class CouponNotFound(OrderRejected):
    code = "COUPON_NOT_FOUND"


class CouponNotActive(OrderRejected):
    code = "COUPON_NOT_ACTIVE"


class CouponMinAmountNotMet(OrderRejected):
    code = "COUPON_MIN_AMOUNT_NOT_MET"


class CouponExhausted(OrderRejected):
    code = "COUPON_EXHAUSTED"


class PaymentAmountMismatch(OrderRejected):
    code = "PAYMENT_AMOUNT_MISMATCH"


class TooManyUnpaidOrders(OrderError):
    """The customer already holds MAX_UNPAID_ORDERS_PER_CUSTOMER CREATED orders; one must be paid or expire."""

    code = "TOO_MANY_UNPAID_ORDERS"


class OrderNotFound(OrderError):
    """No such order, or not one of the caller's (the two are not told apart)."""

    code = "ORDER_NOT_FOUND"


class InvalidOrderState(OrderError):
    code = "INVALID_ORDER_STATE"


class OrderExpired(OrderError):
    """The order's payment deadline has passed: it is EXPIRED and no payment is accepted for it."""

    code = "ORDER_EXPIRED"


class WebhookIdReused(OrderError):
    """A webhook-id already answered for one order, sent again for another: the first answer is not this one's."""

    code = "WEBHOOK_ID_REUSED"


class IdempotencyKeyReused(OrderError):
    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInFlight(OrderError):
    code = "IDEMPOTENCY_KEY_IN_FLIGHT"


class OrderContention(OrderError):
    """The catalog kept changing under the order, or a row it needs stayed locked; the client may try again."""

    code = "ORDER_CONTENTION"
    retry_after_seconds = 1
