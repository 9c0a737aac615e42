"""The inference core: texts in, label probabilities out, with no HTTP or kserve in sight.

Encoding (``textclf.encoding``: the same truncation as in training), grouping by length and the
backend call all happen here, on the batcher's worker thread. ``--backend auto`` (the default)
measures the backends on this machine at load time and serves with the fastest one that keeps
the probe texts' predictions.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from prometheus_client import Counter

from serving.backends import Backend, load_backend, load_candidates
from textclf.encoding import TextEncoder
from textclf.settings import setting

logger = logging.getLogger(__name__)

Truncation = Literal["head", "head_tail"]

# Fixed texts for the load-time bf16 check: short, long, mixed sentiment, non-ASCII.
PROBE_TEXTS = (
    "A wonderful film, I loved every minute of it.",
    "Dreadful. The plot made no sense and the acting was worse.",
    "It was fine, nothing special, but the music was lovely and the ending surprised me.",
    "Ce film est magnifique, une vraie réussite !",
    "I expected to hate it. " * 40 + "Somehow I ended up enjoying it a lot.",
    "Boring boring boring " * 30,
)
# What ``--backend auto`` times each backend on: a batch as the server sees one under load, most
# texts at the longest length the model is served with, a few short ones.
TIMING_TEXTS = (*PROBE_TEXTS, *[PROBE_TEXTS[4]] * 10)
TIMING_REPEATS = 3  # the fastest of these runs counts: other processes only ever slow a run down
LIKELY_FASTEST = ("onnx-int8", "torch-bf16", "onnx", "torch")  # timing order: a clear loser stops early

TOKENS = Counter("textclf_tokens", "Tokens of the texts classified (after truncation)")
PADDED_TOKENS = Counter("textclf_padded_tokens", "Tokens run through the model, padding included")


@dataclasses.dataclass
class InferenceSettings:
    """How the classifier runs; every field is a ``python -m serving`` flag of the same name."""

    backend: Literal["auto", "torch", "onnx", "onnx-int8"] = setting(
        "auto", "Inference backend. auto: the fastest here of torch (fp32, bf16), onnx and onnx-int8 that keeps the "
                "probe texts' predictions, timed at load; ONNX models are exported once from the same directory and "
                "cached.")
    max_length: int | None = setting(None, "Truncate texts to this many tokens (default: as trained, from "
                                     "training.json; else the model's limit).")
    truncation: Truncation | None = setting(None, "Keep the start of long texts (head), or the start and the end "
                                            "(head_tail) (default: as trained).")
    head_tokens: int | None = setting(None, "With head_tail: tokens kept from the start (default: a quarter of "
                                      "the room, as in training).")
    max_batch_tokens: int = setting(2048, "Padded tokens per forward pass (batch size x longest length); larger "
                                    "merged batches are split.")
    pass_cost_tokens: int = setting(32, "The fixed cost of one forward pass, in tokens: texts of a merged batch are "
                                    "grouped by length so that padding plus this per pass is least.")
    threads: int | None = setting(None, "Threads per inference worker (default: usable CPUs / inference_workers).")
    bf16: Literal["auto", "on", "off"] = setting("auto", "torch bf16 autocast; auto: on CPUs with AVX512-BF16/AMX "
                                                 "when the probe texts keep their predictions.")
    bf16_tolerance: float = setting(0.02, "Largest probability change on the probe texts that bf16 may cause.")
    int8_tolerance: float = setting(0.05, "With backend auto: largest probability change on the probe texts that "
                                    "onnx-int8 may cause.")
    cache_dir: str | None = setting(None, "Where ONNX exports are cached, never inside the model directory "
                                    "(default: $TEXTCLF_CACHE_DIR or ~/.cache/textclf-serving).")


@dataclasses.dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: tuple[float, ...]


class TextClassifier:
    """A Model artifact directory, ready to classify texts.

    Args:
        model_dir: a ``save_pretrained`` directory with ``id2label`` and tokenizer files.
        settings: backend, truncation and batching settings.
    """

    def __init__(self, model_dir: str | Path, settings: InferenceSettings):
        from transformers import AutoConfig, AutoTokenizer

        self.model_dir = Path(model_dir)
        if not (self.model_dir / "config.json").is_file():
            raise FileNotFoundError(f"{self.model_dir} has no config.json: not a Model artifact directory")
        self.settings = settings
        config = AutoConfig.from_pretrained(self.model_dir)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        # Serve as trained unless told otherwise: the same truncation avoids train/serve skew.
        self.encoder = TextEncoder.for_model(self.model_dir, self.tokenizer, settings.max_length,
                                             settings.truncation, settings.head_tokens)
        self.max_length, self.truncation = self.encoder.max_length, self.encoder.truncation
        # The fp32 PyTorch model when one was loaded (torch and auto backends), for :explain to reuse.
        self.torch_model = None
        if settings.backend == "auto":
            self.backend, self.backend_name = self._fastest_backend()
        else:
            self.backend: Backend = load_backend(self.model_dir, settings)
            self.backend_name = settings.backend
            if settings.backend == "torch" and settings.bf16 != "off":
                self._choose_bf16()
        self.torch_model = getattr(self.backend, "model", self.torch_model)

    def _choose_bf16(self) -> None:
        """Turn on bf16 autocast when asked, or in auto mode when the CPU has native bf16 and
        the probe texts keep their labels and probabilities within ``bf16_tolerance``."""
        if self.settings.bf16 == "on":
            self.backend.bf16 = True
        elif not self.backend.has_native_bf16():
            logger.info("bf16 off: no native bf16 here (CPU without AVX512-BF16/AMX, or GPU without bf16)")
        else:
            fp32 = self.probabilities(PROBE_TEXTS)
            self.backend.bf16 = self._keeps_predictions("bf16", fp32, self.backend.with_bf16(),
                                                        self.settings.bf16_tolerance)
        self.backend_name = "torch-bf16" if self.backend.bf16 else "torch"

    def _keeps_predictions(self, name: str, reference: np.ndarray, backend: Backend, tolerance: float) -> bool:
        """Whether ``backend`` gives the probe texts the labels of ``reference`` (fp32) and
        probabilities within ``tolerance``; logged either way."""
        probabilities = self._probabilities_with(backend, PROBE_TEXTS)
        drift = float(np.abs(probabilities - reference).max())
        same_labels = bool((probabilities.argmax(1) == reference.argmax(1)).all())
        kept = same_labels and drift <= tolerance
        verdict = ("on" if kept else "off") if name == "bf16" else ("kept" if kept else "rejected")
        logger.info("%s %s: probe labels %s, max probability change %.4f (tolerance %.4f)", name, verdict,
                    "kept" if same_labels else "changed", drift, tolerance)
        return kept

    def _fastest_backend(self) -> tuple[Backend, str]:
        """``--backend auto``: of the backends that keep the probe texts' predictions (fp32 PyTorch
        is the reference), the one that classifies :data:`TIMING_TEXTS` fastest here."""
        candidates = load_candidates(self.model_dir, self.settings)
        reference_backend = candidates["torch"]
        self.torch_model = reference_backend.model
        reference = self._probabilities_with(reference_backend, PROBE_TEXTS)
        tolerances = {"torch-bf16": self.settings.bf16_tolerance, "onnx": 1e-3, "onnx-int8": self.settings.int8_tolerance}
        if self.settings.bf16 == "on":
            tolerances["torch-bf16"] = float("inf")
        kept = {name: backend for name, backend in candidates.items()
                if name == "torch" or self._keeps_predictions(name, reference, backend, tolerances[name])}
        seconds: dict[str, float] = {}
        for name in sorted(kept, key=LIKELY_FASTEST.index):
            seconds[name] = self._seconds_per_batch(kept[name], give_up_after=1.5 * min(seconds.values(), default=np.inf))
        fastest = min(seconds, key=seconds.get)
        logger.info("backend auto: %s (ms for %d texts at up to %d tokens: %s)", fastest, len(TIMING_TEXTS),
                    self.max_length, ", ".join(f"{name} {1000 * value:.0f}" for name, value in seconds.items()))
        return kept[fastest], fastest

    def _seconds_per_batch(self, backend: Backend, give_up_after: float) -> float:
        """The fastest of :data:`TIMING_REPEATS` runs after a warm-up; a run slower than
        ``give_up_after`` (clearly not the fastest backend) ends the timing early."""
        self._probabilities_with(backend, TIMING_TEXTS)  # warm-up
        fastest = np.inf
        for _ in range(TIMING_REPEATS):
            started = time.perf_counter()
            self._probabilities_with(backend, TIMING_TEXTS)
            fastest = min(fastest, time.perf_counter() - started)
            if fastest > give_up_after:
                break
        return fastest

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape [len(texts), K], in the order of ``texts``.

        Texts are sorted by length and grouped (:func:`plan_passes`) so that each forward pass
        pads little: on CPU the cost is the padded length.
        """
        return self._probabilities_with(self.backend, texts)

    def _probabilities_with(self, backend: Backend, texts: Sequence[str]) -> np.ndarray:
        encoded = self.encoder.encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        lengths = [len(encoded[i]) for i in order]
        probabilities = np.empty((len(encoded), len(self.labels)), dtype=np.float32)
        padded = 0
        for start, end in plan_passes(lengths, self.settings.max_batch_tokens, self.settings.pass_cost_tokens):
            input_ids, attention_mask = pad([encoded[i] for i in order[start:end]], self.encoder.pad_id)
            probabilities[order[start:end]] = softmax(backend.logits(input_ids, attention_mask))
            padded += input_ids.size
        TOKENS.inc(sum(lengths))
        PADDED_TOKENS.inc(padded)
        return probabilities

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One :class:`Prediction` per text, in order."""
        probabilities = self.probabilities(texts)
        return [
            Prediction(label=self.labels[int(row.argmax())], score=float(row.max()),
                       probabilities=tuple(float(p) for p in row))
            for row in probabilities
        ]


def plan_passes(lengths: Sequence[int], max_batch_tokens: int, pass_cost_tokens: int) -> list[tuple[int, int]]:
    """Forward passes ``[start, end)`` over ascending ``lengths``, each padded to its last (longest)
    text: the grouping that costs least in padded tokens plus ``pass_cost_tokens`` per pass
    (dynamic programming), each pass within ``max_batch_tokens`` (a longer text runs alone).

    Cutting a merged batch only when it outgrows the budget pads short texts to long ones (~20%
    more tokens on IMDB reviews at 256); one pass per text pays the fixed cost of a pass each time.
    """
    count = len(lengths)
    best = [0.0] + [float("inf")] * count  # best[end]: least cost of the first ``end`` texts
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        longest = lengths[end - 1]
        for start in range(end - 1, -1, -1):
            size = end - start
            if size > 1 and size * longest > max_batch_tokens:
                break
            cost = best[start] + pass_cost_tokens + size * longest
            if cost <= best[end]:  # on a tie, the larger pass: fewer calls
                best[end], cut[end] = cost, start
    passes, end = [], count
    while end > 0:
        passes.append((cut[end], end))
        end = cut[end]
    return passes[::-1]


def pad(batch: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest sequence: ``input_ids`` and ``attention_mask`` as int64."""
    longest = max(len(ids) for ids in batch)
    input_ids = np.full((len(batch), longest), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(batch), longest), dtype=np.int64)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
