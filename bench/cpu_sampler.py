"""The CPU of named processes, and of the whole machine, sampled in a thread so that a window of a run can be read.

A drop's average CPU hides its first second, when the pairs sell and every process wants a core at
once; the samples give each process's share of that window, and the machine's busy time less ours
(other work on the machine) beside them.
"""

import threading
import time
from bisect import bisect_left
from collections.abc import Callable

import psutil

SAMPLE_SECONDS = 0.02


class CpuSampler:
    """Samples `readers` (name -> CPU seconds so far) and the machine's busy CPU seconds every SAMPLE_SECONDS."""

    def __init__(self, readers: dict[str, Callable[[], float]]) -> None:
        self.readers = readers
        self.times: list[float] = []
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> "CpuSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        sample = {}
        for name, read in self.readers.items():
            try:
                sample[name] = read()
            except psutil.Error:
                sample[name] = self.samples[-1][name] if self.samples else 0.0
        sample["machine"] = machine_busy_seconds()
        self.times.append(time.perf_counter())
        self.samples.append(sample)

    def used(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each reader (and the machine) used between two perf_counter instants (nearest samples)."""
        first, last = self._at(start), self._at(end)
        return {name: last[name] - first[name] for name in first}

    def _at(self, instant: float) -> dict[str, float]:
        index = min(bisect_left(self.times, instant), len(self.times) - 1)
        return self.samples[index]


def machine_busy_seconds() -> float:
    """CPU seconds the machine's cores spent on anything but idling and waiting for I/O, since boot."""
    times = psutil.cpu_times()
    not_busy = ("idle", "iowait", "guest", "guest_nice")  # guest time is counted in user time already
    return sum(times) - sum(getattr(times, field, 0.0) for field in not_busy)
