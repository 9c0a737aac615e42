"""Which number format the matrix work runs in, decided from the hardware at run time."""

from __future__ import annotations

import contextlib


def pick_precision(requested: str, device_type: str) -> str:
    """``requested`` unless ``auto``: bf16 where the hardware has it, fp16 on older GPUs, else fp32."""
    from textclf.inference.hardware import native_bf16

    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "bf16" if native_bf16("cuda") else "fp16"
    return "bf16" if native_bf16("cpu") else "fp32"


def autocast(device_type: str, precision: str):
    """The autocast context for ``precision`` (nothing for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)
