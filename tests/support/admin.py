"""The operator's token the suite's API is started with, and the headers that present it."""

ADMIN_TOKEN = "test-admin-token-of-at-least-32-characters"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
