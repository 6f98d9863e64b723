"""Names of PostgreSQL advisory locks: one 64-bit id per thing locked, the same in every process."""

import hashlib
import json


def advisory_lock_id(kind: str, *parts: str) -> int:
    """The lock id of (`kind`, `parts`), for pg_advisory_xact_lock and pg_try_advisory_xact_lock."""
    digest = hashlib.blake2b(json.dumps([kind, *parts]).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
