"""The HTTP API: thin routes over the order domain; no Temporal here, an order never waits on it."""
