"""The demo external data platform: receives order events, dedupes them, and fails on request."""
