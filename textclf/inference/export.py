"""Building the ONNX artifacts of a Model directory (the optimize step's work; it needs torch, a
server never does): the fp32 export, checked against PyTorch, and its dynamic int8 quantization."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

ONNX_OPSET = 17
EXPORT_TOLERANCE = 1e-3  # max |logit difference| between the ONNX fp32 export and PyTorch


def export_onnx(model_dir: Path, out_path: Path) -> None:
    """Export the classifier to ONNX (dynamic batch and length) and check it against PyTorch.

    Raises:
        RuntimeError: the export's logits differ from PyTorch's by more than ``EXPORT_TOLERANCE``.
    """
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification

    # Eager attention traces to plain ops; the SDPA path has data-dependent mask shortcuts
    # that tracing would freeze to the example's values.
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    # A padded example, so that the mask path is the one that gets traced.
    input_ids = torch.full((2, 16), 101, dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python bools in HF code
        torch.onnx.export(
            model,
            (input_ids, attention_mask),
            str(out_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask")}
            | {"logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    with torch.inference_mode():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits.numpy()
    session = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})[0]
    error = float(np.abs(got - expected).max())
    if error > EXPORT_TOLERANCE:
        out_path.unlink()
        raise RuntimeError(f"ONNX export of {model_dir} differs from PyTorch by {error:.2e} (> {EXPORT_TOLERANCE})")


def quantize_dynamic_int8(fp32_path: Path, out_path: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (per channel); activations are quantized at run time."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.INFO)  # the quantizer logs a line per tensor on the root logger
    try:
        quantize_dynamic(
            str(fp32_path),
            str(out_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
    finally:
        logging.disable(logging.NOTSET)
