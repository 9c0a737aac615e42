"""Inference backends: PyTorch (fp32, optional bf16 autocast) and ONNX Runtime (fp32, int8).

The ONNX models are exported from the same Model directory on first use and cached under
``cache_dir`` keyed by a hash of the model files, so a read-only ``/mnt/models`` still works and a
restart reuses the export. Each export is checked against PyTorch before it is used.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
EXPORT_TOLERANCE = 1e-3  # max |logit difference| between the ONNX fp32 export and PyTorch
_MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


class Backend(Protocol):
    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits [batch, K] for right-padded int64 ``input_ids`` / ``attention_mask``."""


def cpu_threads(requested: int | None) -> int:
    """The requested thread count, or the CPUs this process may run on (cgroup/affinity aware)."""
    return requested or len(os.sched_getaffinity(0))


class TorchBackend:
    """The Model directory in PyTorch, eval mode, ``torch.inference_mode``; on the GPU when the
    image has CUDA and one is visible (the GPU image variant), else on the CPU."""

    def __init__(self, model_dir: Path, threads: int):
        import torch
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval().to(self.device)
        self.bf16 = False

    def has_native_bf16(self) -> bool:
        """bf16 in hardware: a CUDA GPU that supports it, or a CPU with AVX512-BF16 or AMX."""
        if self.device.type == "cuda":
            return self._torch.cuda.is_bf16_supported()
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags

    def with_bf16(self) -> TorchBackend:
        """The same model (shared, not copied) with bf16 autocast on."""
        other = copy.copy(self)
        other.bf16 = True
        return other

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = self.model(input_ids=torch.from_numpy(input_ids).to(self.device),
                             attention_mask=torch.from_numpy(attention_mask).to(self.device))
        return out.logits.float().cpu().numpy()


class OnnxBackend:
    """An exported ONNX model in ONNX Runtime's CPU provider."""

    def __init__(self, onnx_path: Path, threads: int):
        import onnxruntime as ort

        self.path = onnx_path
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1  # one batch at a time: parallelism is inside the ops
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": input_ids, "attention_mask": attention_mask})[0]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("TEXTCLF_CACHE_DIR") or Path(base) / "textclf-serving")


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over the files that define the network, plus the exporter's versions."""
    versions = ";".join(f"{package}={metadata.version(package)}" for package in ("torch", "transformers", "onnxruntime"))
    digest = hashlib.sha256(f"{versions};opset={ONNX_OPSET}".encode())
    for name in _MODEL_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def _atomic_target(path: Path) -> Path:
    """A temporary name next to ``path``: written there, then renamed, so that two servers
    exporting at once never see a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def export_onnx(model_dir: Path, out_path: Path) -> None:
    """Export the classifier to ONNX (dynamic batch and length) and check it against PyTorch."""
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
    tmp = _atomic_target(out_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python bools in HF code
        torch.onnx.export(
            model, (input_ids, attention_mask), str(tmp),
            input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask")}
            | {"logits": {0: "batch"}},
            opset_version=ONNX_OPSET, dynamo=False,
        )
    with torch.inference_mode():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits.numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})[0]
    error = float(np.abs(got - expected).max())
    if error > EXPORT_TOLERANCE:
        tmp.unlink()
        raise RuntimeError(f"ONNX export of {model_dir} differs from PyTorch by {error:.2e} (> {EXPORT_TOLERANCE})")
    tmp.replace(out_path)


def quantize_int8(fp32_path: Path, out_path: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (per channel); activations stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _atomic_target(out_path)
    quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])
    tmp.replace(out_path)


def ensure_onnx(model_dir: Path, folder: Path, int8: bool) -> Path:
    """Export (and quantize) into ``folder`` what is missing; returns the model to load."""
    folder.mkdir(parents=True, exist_ok=True)
    fp32_path = folder / "model.onnx"
    if not fp32_path.exists():
        logger.info("Exporting %s to ONNX at %s", model_dir, fp32_path)
        export_onnx(model_dir, fp32_path)
    if not int8:
        return fp32_path
    int8_path = folder / "model-int8.onnx"
    if not int8_path.exists():
        logger.info("Quantizing %s to int8 at %s", fp32_path, int8_path)
        quantize_int8(fp32_path, int8_path)
    return int8_path


def onnx_model_path(model_dir: Path, cache_dir: Path, int8: bool) -> Path:
    """The cached ONNX export of ``model_dir`` (fp32 or int8), created when missing.

    A missing export is made in a child process, so that an ONNX server never holds PyTorch and
    the exporter's memory: only ONNX Runtime stays resident.
    """
    folder = cache_dir / model_fingerprint(model_dir)
    wanted = folder / ("model-int8.onnx" if int8 else "model.onnx")
    if wanted.exists():
        return wanted
    # A fresh interpreter rather than multiprocessing: it does not re-run the caller's __main__.
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    code = ("import sys; from pathlib import Path; from serving.backends import ensure_onnx; "
            "ensure_onnx(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == 'int8')")
    result = subprocess.run([sys.executable, "-c", code, str(model_dir), str(folder), "int8" if int8 else "fp32"],
                            env=env)
    if result.returncode != 0 or not wanted.exists():
        raise RuntimeError(f"ONNX export of {model_dir} failed (exit {result.returncode}); see the log above")
    return wanted


def load_candidates(model_dir: Path, settings) -> dict[str, Backend]:
    """What ``--backend auto`` chooses from: torch (fp32, always: the reference), torch-bf16 where
    bf16 is native (or ``--bf16 on``; none with ``--bf16 off``), and on CPUs onnx and onnx-int8
    (exported when missing). A backend that fails to load is logged and left out."""
    threads = cpu_threads(settings.threads)
    fp32 = TorchBackend(model_dir, threads)
    candidates: dict[str, Backend] = {"torch": fp32}
    if settings.bf16 == "on" or (settings.bf16 == "auto" and fp32.has_native_bf16()):
        candidates["torch-bf16"] = fp32.with_bf16()
    if fp32.device.type == "cpu":  # ONNX Runtime's CPU provider only
        cache_dir = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
        for name, int8 in (("onnx", False), ("onnx-int8", True)):
            try:
                candidates[name] = OnnxBackend(onnx_model_path(model_dir, cache_dir, int8=int8), threads)
            except Exception as error:  # an architecture the exporter cannot trace, a full disk...
                logger.warning("backend auto: %s left out: %s", name, error)
    return candidates


def load_backend(model_dir: Path, settings) -> Backend:
    """The backend ``settings.backend`` names, with ``settings.threads`` threads."""
    threads = cpu_threads(settings.threads)
    if settings.backend == "torch":
        return TorchBackend(model_dir, threads)
    if settings.backend in ("onnx", "onnx-int8"):
        cache_dir = Path(settings.cache_dir) if settings.cache_dir else default_cache_dir()
        path = onnx_model_path(model_dir, cache_dir, int8=settings.backend == "onnx-int8")
        return OnnxBackend(path, threads)
    raise ValueError(f"unknown backend {settings.backend!r}: expected auto, torch, onnx or onnx-int8")
