"""sneaker-orders: order backend of a sneaker shop."""
