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


class OrderNotFound(OrderError):
    code = "ORDER_NOT_FOUND"


class InvalidOrderState(OrderError):
    code = "INVALID_ORDER_STATE"


class IdempotencyKeyReused(OrderError):
    code = "IDEMPOTENCY_KEY_REUSED"


class IdempotencyKeyInFlight(OrderError):
    code = "IDEMPOTENCY_KEY_IN_FLIGHT"


class OrderContention(OrderError):
    """The catalog kept changing under the order; the client may simply try again."""

    code = "ORDER_CONTENTION"
