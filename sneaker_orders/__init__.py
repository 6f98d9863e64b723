"""The ground floor of sneaker-orders: settings, logging, tracing, worker metrics, redaction, moments.

It imports nothing of ours.
"""
