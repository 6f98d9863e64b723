"""The ground floor of sneaker-orders: settings, logging, tracing, worker metrics; it imports nothing of ours."""
