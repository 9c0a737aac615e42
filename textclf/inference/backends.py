"""The inference backends and their one registry of names.

A backend runs padded token ids to logits (:class:`Backend`). A backend *kind* (one class each,
one entry in :data:`BACKENDS`) says what it needs on this machine, how the optimize step builds
its artifact inside the Model directory, and how a process loads it from there. A server loads
the prebuilt artifact and never exports or quantizes; an ONNX kind never imports torch.

Adding a backend: a :class:`BackendKind` subclass and its entry in :data:`BACKENDS`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from textclf.inference.batching import Batching
from textclf.inference.hardware import native_bf16

if TYPE_CHECKING:
    from transformers import PreTrainedModel


# ONNX Runtime, once imported, writes a device id and a telemetry database under $XDG_CACHE_HOME
# (~/.cache/Microsoft/DeveloperTools/.onnxruntime): nothing a server should write or send. Read at
# its import, so set before any module here imports it.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

REFERENCE = "torch"  # fp32 PyTorch: what every other backend is measured against
AUTO = "auto"
ONNX_DIR = "onnx"


class MissingArtifactError(FileNotFoundError):
    """A backend's artifact is not in the Model directory: the optimize step builds it."""


class Backend(Protocol):
    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits [batch, K] (float32) for right-padded int64 ``input_ids`` / ``attention_mask``."""


class TorchBackend:
    """A PyTorch sequence classifier in eval mode under ``torch.inference_mode``, in ``precision``
    (fp32, or bf16 / fp16 autocast) on the device its weights are on.

    Args:
        model: a ``transformers`` sequence classifier (shared, not copied: training validates the
            model it trains through this).
        precision: ``fp32``, ``bf16`` or ``fp16``.
    """

    def __init__(self, model: PreTrainedModel, precision: str = "fp32"):
        import torch

        self._torch = torch
        self.model = model
        self.precision = precision
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, model_dir: Path, threads: int, precision: str = "fp32") -> TorchBackend:
        """The Model directory's weights, on the GPU when one is visible (the GPU image), else the CPU."""
        import torch
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(threads)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return cls(AutoModelForSequenceClassification.from_pretrained(model_dir).eval().to(device), precision)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.model.eval()
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.model(
                input_ids=torch.as_tensor(input_ids).to(self.device),
                attention_mask=torch.as_tensor(attention_mask).to(self.device),
            )
        return out.logits.float().cpu().numpy()


class OnnxBackend:
    """An ONNX model in ONNX Runtime's CPU provider (no torch in the process)."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        self.path = path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one batch at a time: parallelism is inside the ops
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]


class BackendKind:
    """One backend name: what it needs, how its artifact is built, how it is loaded.

    Attributes:
        name: the name in :data:`BACKENDS`, ``--backend`` and ``serving.json``.
        artifact: its file inside the Model directory (None: it runs the weights themselves).
        requires: kinds whose artifacts this one is built from (built first).
        needs_torch: loading it imports torch (a server of any other kind never does).
    """

    name = ""
    artifact: str | None = None
    requires: tuple[str, ...] = ()
    needs_torch = False

    def unavailable(self) -> str | None:
        """Why this machine cannot run this backend well, or None when it can."""
        return None

    def build(self, model_dir: Path) -> None:
        """Write :attr:`artifact` into ``model_dir`` (which holds the weights and the required artifacts)."""

    def load(self, model_dir: Path, threads: int) -> Backend:
        raise NotImplementedError

    def batching(self, default: Batching) -> Batching:
        """The passes this backend runs (a backend whose numbers depend on the batch narrows them)."""
        return default

    def artifact_path(self, model_dir: Path) -> Path:
        """The built artifact, or :class:`MissingArtifactError` saying how to build it."""
        if self.artifact is None:
            raise TypeError(f"backend {self.name!r} has no artifact: it runs the model's weights")
        path = Path(model_dir) / self.artifact
        if not path.is_file():
            raise MissingArtifactError(
                f"backend {self.name!r} needs {self.artifact} in the Model directory {model_dir}, which has none: the "
                f"pipeline's optimize step builds it (locally: python -m textclf.optimize --model_dir {model_dir} "
                f"--output_dir NEW_DIR); the server never exports at start"
            )
        return path


class TorchFp32(BackendKind):
    """PyTorch in fp32: the reference every other backend is measured against."""

    name = REFERENCE
    needs_torch = True

    def load(self, model_dir: Path, threads: int) -> Backend:
        return TorchBackend.load(model_dir, threads)


class TorchBf16(TorchFp32):
    """PyTorch with bf16 autocast: fast only where bf16 is native (AVX512-BF16, AMX, recent GPUs)."""

    name = "torch-bf16"

    def unavailable(self) -> str | None:
        return (
            None
            if native_bf16()
            else "no native bf16 on this CPU (AVX512-BF16 or AMX): emulated bf16 is slower than fp32"
        )

    def load(self, model_dir: Path, threads: int) -> Backend:
        return TorchBackend.load(model_dir, threads, precision="bf16")


class OnnxFp32(BackendKind):
    """The model exported to ONNX, in ONNX Runtime (CPU)."""

    name = "onnx"
    artifact = f"{ONNX_DIR}/model.onnx"

    def build(self, model_dir: Path) -> None:
        from textclf.inference.export import export_onnx

        export_onnx(model_dir, model_dir / self.artifact)

    def load(self, model_dir: Path, threads: int) -> Backend:
        return OnnxBackend(self.artifact_path(model_dir), threads)


class OnnxInt8(OnnxFp32):
    """The ONNX model with int8 weights and int8 activations quantized on the fly (ONNX Runtime's
    dynamic quantization of every MatMul).

    Dynamic quantization scales a MatMul's activations by the whole input tensor's range, so a
    text's numbers would depend on the texts batched with it (and on their padding: up to 0.05 in
    probability on IMDB reviews): this backend runs one text per pass, which makes its answers the
    same however requests arrive, in evaluate and in every replica. On one thread that costs
    nothing (int8 MiniLM: 30.9 ms per review at 256 tokens one at a time, 35.9 ms in batches of 16,
    docs/benchmarks-serving.md); a lone text spreads less well over several threads, which
    ``--inference_workers N --threads 1`` avoids.
    """

    name = "onnx-int8"
    artifact = f"{ONNX_DIR}/model-int8.onnx"
    requires = ("onnx",)

    def build(self, model_dir: Path) -> None:
        from textclf.inference.export import quantize_dynamic_int8

        quantize_dynamic_int8(model_dir / OnnxFp32.artifact, model_dir / self.artifact)

    def batching(self, default: Batching) -> Batching:
        return dataclasses.replace(default, max_texts=1)


BACKENDS: dict[str, BackendKind] = {kind.name: kind for kind in (TorchFp32(), TorchBf16(), OnnxFp32(), OnnxInt8())}


def backend_names() -> str:
    """The backends' names as help texts list them: ``torch, torch-bf16, onnx or onnx-int8``."""
    *others, last = BACKENDS
    return f"{', '.join(others)} or {last}" if others else last


def backend_kind(name: str) -> BackendKind:
    """The kind named ``name``, or ValueError listing the names there are."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)} (or {AUTO})")
    return BACKENDS[name]
