"""What this machine's processor offers, read once: native bf16, int8 dot products, usable CPUs.

The one native-bf16 check of the project (training's precision, the optimize step's candidates and
the benchmarks' machine line all ask here). It reads ``/proc/cpuinfo`` instead of asking torch, so
that a server that serves ONNX never imports torch; ``avx512_bf16`` / ``amx_bf16`` are the
instructions that make bf16 matrix work fast. (torch's own ``mkldnn`` check also says yes on
AVX512 CPUs without them, where bf16 is emulated and slower than fp32.)
"""

from __future__ import annotations

import functools
import math
import os
import platform
from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Instructions that int8 matrix kernels use (ONNX Runtime and oneDNN pick faster kernels with them).
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
VECTOR_FLAGS = ("avx2", "avx512f")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The instruction set flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``platform.processor()`` is empty on Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )


def cpu_bf16_instructions() -> list[str]:
    """This CPU's native bf16 instructions (AVX512-BF16 and/or AMX), possibly none."""
    return [flag for flag in BF16_FLAGS if flag in cpu_flags()]


def native_bf16(device_type: str = "cpu") -> bool:
    """bf16 in hardware: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX."""
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_bf16_supported())
    return bool(cpu_bf16_instructions())


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPU limit of this container (cgroup v2 ``cpu.max``, else v1's CFS quota), rounded up; None
    when unlimited or unknown."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def cpu_threads(requested: int | None = None) -> int:
    """``requested``, or the CPUs this process may use: its affinity, capped by the container's CPU
    limit (a pod limited to 2 CPUs on a 32-core node must not run 32 threads)."""
    if requested:
        return requested
    usable = len(os.sched_getaffinity(0))
    limit = cgroup_cpus()
    return min(usable, limit) if limit else usable


def cpu_summary() -> dict:
    """What the optimize step records about the CPU its speeds were measured on, and what the server
    compares with its own (``speed_features``)."""
    return {"cpu": cpu_model(), "threads": cpu_threads(), "features": speed_features()}


def speed_features() -> list[str]:
    """The flags that change which backend is fastest (and int8 kernels' rounding): vector width,
    bf16 and int8 instructions."""
    return sorted(flag for flag in (*VECTOR_FLAGS, *BF16_FLAGS, *INT8_FLAGS) if flag in cpu_flags())
