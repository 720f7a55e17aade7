"""What the runner reads from Linux about a process and the machine, and the percentile it reports.

CPU is ``utime + stime`` of ``/proc/<pid>/stat`` (clock ticks, 10 ms at the usual 100 Hz);
RSS is ``VmRSS`` of ``/proc/<pid>/status``; run-queue wait is the second field of
``/proc/<pid>/schedstat``; machine load is the ``cpu`` line of ``/proc/stat``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

_TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * _TICK     # fields 14 and 15 of stat(5)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    return 0


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the process's main thread spent runnable but waiting for a CPU (``/proc/<pid>/schedstat``):
    time other processes took from it, which inflates every latency it shows."""
    with open(f"/proc/{pid}/schedstat", "rb") as f:
        return int(f.read().split()[1]) / 1e9


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat", "rb") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)   # idle + iowait
    total = sum(values[:8])
    return total - idle, total


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])
