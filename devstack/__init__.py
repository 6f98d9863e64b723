"""Stand-ins for the outside world on a developer's machine: embedded PostgreSQL and Temporal, dev secrets,
customer tokens, the payment provider and the demo platform. Production code never imports them."""
