"""Temporal activities: all of the relay's I/O (database, platform over HTTP, clock) happens here."""
