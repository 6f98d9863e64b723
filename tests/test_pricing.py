"""Properties of pricing, for any amounts: integer won, rounded down, capped, never above the subtotal."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from db.orders.errors import CouponExhausted, CouponMinAmountNotMet, CouponNotActive
from db.orders.pricing import CouponTerms, OrderLine, coupon_discount, merge_lines

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def coupon(**terms) -> CouponTerms:
    defaults = dict(
        id=1,
        code="C",
        discount_type="FIXED",
        discount_value=1000,
        max_discount=None,
        min_order_amount=0,
        starts_at=None,
        expires_at=None,
        usage_limit=None,
        used_count=0,
        active=True,
        updated_at=NOW,
    )
    return CouponTerms(**{**defaults, **terms})


@given(
    subtotal=st.integers(min_value=0, max_value=10**12),
    percent=st.integers(min_value=1, max_value=100),
    cap=st.none() | st.integers(min_value=0, max_value=10**9),
)
def test_a_percent_discount_is_the_floor_of_the_share_within_cap_and_subtotal(subtotal, percent, cap):
    discount = coupon_discount(coupon(discount_type="PERCENT", discount_value=percent, max_discount=cap), subtotal, NOW)

    assert isinstance(discount, int)
    assert 0 <= discount <= subtotal
    assert discount <= subtotal * percent / 100 < discount + 1 or discount == cap
    if cap is not None:
        assert discount <= cap


@given(subtotal=st.integers(min_value=0, max_value=10**12), value=st.integers(min_value=1, max_value=10**9))
def test_a_fixed_discount_never_exceeds_the_subtotal(subtotal, value):
    assert coupon_discount(coupon(discount_value=value), subtotal, NOW) == min(value, subtotal)


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 10)), min_size=1, max_size=20))
def test_merged_lines_keep_every_pair_once_per_product(pairs):
    merged = merge_lines([OrderLine(product, quantity) for product, quantity in pairs])

    assert [line.product_id for line in merged] == sorted({product for product, _ in pairs})
    assert sum(line.quantity for line in merged) == sum(quantity for _, quantity in pairs)


@pytest.mark.parametrize(
    ("terms", "error"),
    [
        (dict(active=False), CouponNotActive),
        (dict(starts_at=NOW + timedelta(seconds=1)), CouponNotActive),
        (dict(expires_at=NOW), CouponNotActive),
        (dict(usage_limit=3, used_count=3), CouponExhausted),
        (dict(min_order_amount=10001), CouponMinAmountNotMet),
    ],
)
def test_a_coupon_that_cannot_be_used_raises_its_rule(terms, error):
    with pytest.raises(error):
        coupon_discount(coupon(**terms), 10000, NOW)


def test_a_coupon_is_usable_from_its_start_until_just_before_its_expiry():
    window = coupon(starts_at=NOW, expires_at=NOW + timedelta(seconds=1))

    assert coupon_discount(window, 10000, NOW) == 1000
