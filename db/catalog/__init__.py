"""The catalog: products with their stock, and coupons."""
