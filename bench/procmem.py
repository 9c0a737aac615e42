"""Memory of benchmark processes, read from ``/proc`` (Linux), shared by the bench scripts."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb(pid: int) -> float:
    """A process's high-water resident set (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB (what a pod's memory limit counts);
    processes that end while being read count as 0."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024
