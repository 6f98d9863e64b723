"""The `sneaker-orders` console script, on the top floor: one subcommand per process or operator task."""
