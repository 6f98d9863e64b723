"""The suite's own scheduler (tests/support/scheduling.py): groups that keep modules whole, chunks of long modules,
two lanes for the heavy tests, the longest group first."""

import pytest

from tests.support.scheduling import longest_first, without_group


class FakeItem:
    """What the scheduler reads of a collected test: its node id and markers."""

    def __init__(self, nodeid: str, heavy: bool = False) -> None:
        self.nodeid = nodeid
        self.heavy = heavy
        self.group = None

    def get_closest_marker(self, name: str):
        return pytest.mark.heavy.mark if name == "heavy" and self.heavy else None

    def add_marker(self, marker) -> None:
        assert marker.mark.name == "xdist_group"
        self.group = marker.mark.args[0]


def groups_in_order(items: list[FakeItem]) -> list[tuple[str, list[str]]]:
    """Consecutive runs of one group: (group, node ids)."""
    runs: list[tuple[str, list[str]]] = []
    for item in items:
        if not runs or runs[-1][0] != item.group:
            runs.append((item.group, []))
        runs[-1][1].append(item.nodeid)
    return runs


def test_modules_stay_whole_and_the_longest_group_comes_first():
    items = [FakeItem("tests/test_a.py::one"), FakeItem("tests/test_a.py::two"), FakeItem("tests/test_b.py::one")]
    ordered = longest_first(items, {"tests/test_a.py::one": 2, "tests/test_a.py::two": 3, "tests/test_b.py::one": 9}, 2)
    assert groups_in_order(ordered) == [
        ("tests/test_b.py#0", ["tests/test_b.py::one"]),
        ("tests/test_a.py#0", ["tests/test_a.py::one", "tests/test_a.py::two"]),
    ]


def test_a_long_module_is_cut_into_chunks_in_file_order_and_an_unknown_test_counts_a_second():
    names = ["a", "b", "c", "d", "e"]
    items = [FakeItem(f"tests/test_long.py::{name}") for name in names]
    durations = {"tests/test_long.py::a": 20, "tests/test_long.py::b": 9, "tests/test_long.py::c": 45}
    ordered = longest_first(items, durations, 2)
    assert groups_in_order(ordered) == [
        ("tests/test_long.py#1", ["tests/test_long.py::c"]),
        ("tests/test_long.py#0", ["tests/test_long.py::a", "tests/test_long.py::b"]),
        ("tests/test_long.py#2", ["tests/test_long.py::d", "tests/test_long.py::e"]),
    ]


def test_heavy_tests_share_two_lanes_balanced_by_duration_and_the_two_longest_do_not_start_together():
    durations = {"tests/test_h.py::big": 80, "tests/test_h.py::long": 70, "tests/test_h.py::mid": 30}
    durations |= {f"tests/test_h.py::small{n}": 10 for n in range(5)}
    items = [FakeItem(nodeid, heavy=True) for nodeid in durations] + [FakeItem("tests/test_light.py::one")]
    lanes = dict(groups_in_order(longest_first(items, durations, 2)))
    assert set(lanes) == {"heavy#0", "heavy#1", "tests/test_light.py#0"}
    assert sorted(sum(durations[nodeid] for nodeid in lanes[lane]) for lane in ("heavy#0", "heavy#1")) == [110, 120]
    assert lanes["heavy#0"][0] == "tests/test_h.py::big"
    assert lanes["heavy#1"][-1] == "tests/test_h.py::long"


def test_the_group_xdist_appends_is_taken_off_a_node_id_but_not_an_at_sign_in_a_parameter():
    assert without_group("tests/test_a.py::one@heavy#0") == "tests/test_a.py::one"
    assert without_group("tests/test_a.py::one[a@b]") == "tests/test_a.py::one[a@b]"
    assert without_group("tests/test_a.py::one[a@b]@tests/test_a.py#0") == "tests/test_a.py::one[a@b]"
