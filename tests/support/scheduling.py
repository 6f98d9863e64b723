"""Longest work first across xdist workers, so that the suite's long scenarios do not end up serial at its end.

Under `--dist loadgroup` (the Makefile's), every test gets an `xdist_group`:
- a test marked `heavy` (one that needs the CPU: a bar on speed under load, a drain, a deadline, or a long
  CPU-bound run that would slow those) joins one of the lanes (one per two workers, at most LANES), so that no
  more of them run at once whatever the number of workers; the lanes are balanced by duration, the first runs
  its longest test first and the second its shortest first, so that the two longest scenarios do not end side
  by side;
- any other test goes with its module, as `--dist loadfile` would group it, except that a module whose recorded
  durations add up to more than CHUNK_SECONDS is cut into consecutive chunks of at most that much, so that one
  module's minutes spread over several workers.
Each worker keeps its own PostgreSQL and Temporal server for the session and every test resets what it uses, so
a chunk needs nothing from the tests before it. Groups are then handed out longest first (the order xdist sees
with `--no-loadscope-reorder`), the classic rule that keeps the last worker from finishing long after the others.

The weights are the durations of a full run (tests/durations.json; `make test-durations` measures them again,
`--store-durations` on any run updates the tests it ran); a test missing from it counts DEFAULT_SECONDS. A stale
file costs speed, never a test.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import pytest

DURATIONS = Path(__file__).parent.parent / "durations.json"
CHUNK_SECONDS = 30.0
LANES = 2
DEFAULT_SECONDS = 1.0


def recorded_durations() -> dict[str, float]:
    """Seconds per test node id (setup, call and teardown) of the last full run; empty without the file."""
    return json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}


def chunks(items: list[pytest.Item], weight: dict[str, float]) -> Iterable[list[pytest.Item]]:
    """The items of one module in consecutive runs of at most CHUNK_SECONDS (a longer test is a chunk alone)."""
    chunk: list[pytest.Item] = []
    seconds = 0.0
    for item in items:
        if chunk and seconds + weight[item.nodeid] > CHUNK_SECONDS:
            yield chunk
            chunk, seconds = [], 0.0
        chunk.append(item)
        seconds += weight[item.nodeid]
    if chunk:
        yield chunk


def lanes(items: list[pytest.Item], weight: dict[str, float], count: int) -> list[list[pytest.Item]]:
    """The `heavy` items in `count` lanes of about equal duration; even lanes longest first, odd ones shortest first."""
    queues: list[list[pytest.Item]] = [[] for _ in range(count)]
    for item in sorted(items, key=lambda item: -weight[item.nodeid]):
        min(queues, key=lambda queue: sum(weight[queued.nodeid] for queued in queue)).append(item)
    return [queue if number % 2 == 0 else queue[::-1] for number, queue in enumerate(queues)]


def longest_first(items: list[pytest.Item], durations: dict[str, float], lane_count: int) -> list[pytest.Item]:
    """`items` grouped (each marked with its `xdist_group`) and ordered group by group, the longest group first."""
    weight = {item.nodeid: durations.get(item.nodeid, DEFAULT_SECONDS) for item in items}
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    groups = {f"heavy#{number}": lane for number, lane in enumerate(lanes(heavy, weight, lane_count)) if lane}
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        if not item.get_closest_marker("heavy"):
            modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    for module, module_items in modules.items():
        groups.update({f"{module}#{number}": chunk for number, chunk in enumerate(chunks(module_items, weight))})
    for name, group in groups.items():
        for item in group:
            item.add_marker(pytest.mark.xdist_group(name))
    ordered = sorted(groups.values(), key=lambda group: -sum(weight[item.nodeid] for item in group))
    return [item for group in ordered for item in group]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-durations",
        action="store_true",
        help="write the durations of the tests run into tests/durations.json (the weights of longest-first)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Only on an xdist worker of a `--dist loadgroup` run: a plain run keeps the file order.
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):
        # One lane per two workers: on two workers a heavy test runs only beside light ones.
        lane_count = max(1, min(LANES, config.workerinput["workercount"] // 2))
        items[:] = longest_first(items, recorded_durations(), lane_count)


def without_group(nodeid: str) -> str:
    """The node id as written in the test files: xdist's loadgroup appends `@group` to it."""
    return nodeid.rsplit("@", 1)[0] if nodeid.rfind("@") > nodeid.rfind("]") else nodeid


class DurationRecorder:
    """On the controller (or a plain run): each test's setup, call and teardown seconds, its last attempt only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = without_group(report.nodeid)
        # A re-run starts with its setup again: only the last attempt counts.
        self.seconds[nodeid] = report.duration + (0 if report.when == "setup" else self.seconds.get(nodeid, 0))

    def pytest_sessionfinish(self) -> None:
        kept = {
            nodeid: seconds
            for nodeid, seconds in recorded_durations().items()
            if (DURATIONS.parent.parent / nodeid.split("::", 1)[0]).exists()
        }
        kept.update({nodeid: round(seconds, 2) for nodeid, seconds in self.seconds.items()})
        DURATIONS.write_text(json.dumps(dict(sorted(kept.items())), indent=0) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "heavy: needs the CPU (a bar on speed, a CPU-bound run); at most LANES run at once (scheduling.py)"
    )
    if config.getoption("--store-durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(DurationRecorder(), "duration-recorder")
