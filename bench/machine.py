"""The machine line every benchmark report carries: CPU model, cores, native bf16, library versions.

Which backend is fastest depends on the CPU (AMX on Intel, AVX512-BF16 only on AMD), so every
recorded number names it. Torch and transformers are imported only when asked for.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textclf.inference.hardware import cpu_bf16_instructions, cpu_model, speed_features


def bf16_instructions() -> str:
    """The CPU's native bf16 instructions (AVX512-BF16 and/or AMX), or ``none``."""
    return ", ".join(cpu_bf16_instructions()) or "none"


def machine(libraries: bool = True, memory: bool = False) -> dict:
    """CPU, cores, bf16 instructions and, with ``libraries``, torch's threads and versions."""
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "bf16 instructions": bf16_instructions(),
        "speed flags": ", ".join(speed_features()) or "none",
    }
    if memory:
        info["memory"] = f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB"
    if libraries:
        import torch
        import transformers

        info.update(
            {
                "torch threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
        )
    return info


def machine_line(**options) -> str:
    """:func:`machine` as ``cpu AMD EPYC, cores 2, ...``."""
    return ", ".join(f"{key} {value}" for key, value in machine(**options).items())
