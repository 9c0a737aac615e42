"""Which number format the matrix work runs in, decided from the hardware at run time."""

from __future__ import annotations

import contextlib


def cpu_has_bf16() -> bool:
    """True on CPUs whose instructions make bf16 matrix work fast (AVX512-BF16 or AMX)."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_precision(requested: str, device_type: str) -> str:
    """``requested`` unless ``auto``: bf16 where the hardware has it, fp16 on older GPUs, else fp32."""
    import torch

    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(device_type: str, precision: str):
    """The autocast context for ``precision`` (nothing for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)
