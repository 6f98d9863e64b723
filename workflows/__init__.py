"""Temporal workflows: they only orchestrate; every side effect is an activity."""
