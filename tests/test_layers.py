"""The floors of the tree (README, "Layout") hold: no upward import, no import circle."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What worker.py may import of ours: the floors below it (the console script and the stand-ins are above).
BELOW_THE_WORKER = {"workflows", "api", "activities", "db", "sneaker_orders"}
OUR_TOP_LEVEL = BELOW_THE_WORKER | {"cli", "devstack", "worker"}


def test_every_import_contract_of_pyproject_is_kept():
    linted = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 broken" in linted.stdout


def test_the_worker_module_imports_only_from_the_floors_below_it():
    tree = ast.parse((ROOT / "worker.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    ours = {name.split(".")[0] for name in imported} & OUR_TOP_LEVEL

    assert ours, "worker.py wires workflows and activities: it must import some of ours"
    assert ours <= BELOW_THE_WORKER, f"worker.py imports from a floor above it: {sorted(ours - BELOW_THE_WORKER)}"
