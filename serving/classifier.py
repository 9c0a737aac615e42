"""The inference core: texts in, label probabilities out, with no HTTP or kserve in sight.

Encoding (``textclf.encoding``: the same truncation as in training), length-sorted padding per
batch and the backend call all happen here, on the batcher's worker thread.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from serving.backends import Backend, load_backend
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


@dataclasses.dataclass
class InferenceSettings:
    """How the classifier runs; every field is a ``python -m serving`` flag of the same name."""

    backend: Literal["torch", "onnx", "onnx-int8"] = setting("torch", "Inference backend; ONNX models are exported "
                                                             "once from the same directory and cached.")
    max_length: int | None = setting(None, "Truncate texts to this many tokens (default: as trained, from "
                                     "training.json; else the model's limit).")
    truncation: Truncation | None = setting(None, "Keep the start of long texts (head), or the start and the end "
                                            "(head_tail) (default: as trained).")
    head_tokens: int | None = setting(None, "With head_tail: tokens kept from the start (default: a quarter of "
                                      "the room, as in training).")
    max_batch_tokens: int = setting(2048, "Padded tokens per forward pass (batch size x longest length); larger "
                                    "merged batches are split.")
    threads: int | None = setting(None, "Threads per inference worker (default: usable CPUs / inference_workers).")
    bf16: Literal["auto", "on", "off"] = setting("auto", "torch bf16 autocast; auto: on CPUs with AVX512-BF16/AMX "
                                                 "when the probe texts keep their predictions.")
    bf16_tolerance: float = setting(0.02, "Largest probability change on the probe texts that bf16 may cause.")
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
        self.backend: Backend = load_backend(self.model_dir, settings)
        if settings.backend == "torch" and settings.bf16 != "off":
            self._choose_bf16()

    def _choose_bf16(self) -> None:
        """Turn on bf16 autocast when asked, or in auto mode when the CPU has native bf16 and
        the probe texts keep their labels and probabilities within ``bf16_tolerance``."""
        if self.settings.bf16 == "on":
            self.backend.bf16 = True
            return
        if not self.backend.has_native_bf16():
            logger.info("bf16 off: no native bf16 here (CPU without AVX512-BF16/AMX, or GPU without bf16)")
            return
        fp32 = self.probabilities(PROBE_TEXTS)
        self.backend.bf16 = True
        bf16 = self.probabilities(PROBE_TEXTS)
        drift = float(np.abs(bf16 - fp32).max())
        same_labels = bool((bf16.argmax(1) == fp32.argmax(1)).all())
        self.backend.bf16 = same_labels and drift <= self.settings.bf16_tolerance
        logger.info("bf16 %s: probe labels %s, max probability change %.4f (tolerance %.4f)",
                    "on" if self.backend.bf16 else "off", "kept" if same_labels else "changed",
                    drift, self.settings.bf16_tolerance)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape [len(texts), K], in the order of ``texts``.

        Texts are sorted by length and cut into batches of at most ``max_batch_tokens`` padded
        tokens, each padded only to its own longest text: on CPU the cost is the padded length.
        """
        encoded = self.encoder.encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        probabilities = np.empty((len(encoded), len(self.labels)), dtype=np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            # Sorted ascending, so the last text of a batch sets its padded length.
            while end < len(order) and (end - start + 1) * len(encoded[order[end]]) <= self.settings.max_batch_tokens:
                end += 1
            batch = [encoded[i] for i in order[start:end]]
            input_ids, attention_mask = pad(batch, self.encoder.pad_id)
            probabilities[order[start:end]] = softmax(self.backend.logits(input_ids, attention_mask))
            start = end
        return probabilities

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One :class:`Prediction` per text, in order."""
        probabilities = self.probabilities(texts)
        return [
            Prediction(label=self.labels[int(row.argmax())], score=float(row.max()),
                       probabilities=tuple(float(p) for p in row))
            for row in probabilities
        ]


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
