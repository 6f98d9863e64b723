"""Persistence and the order domain: tables, migrations, and the units of work on them."""
