"""The inference core: texts in, label probabilities out, with no HTTP or kserve in sight.

Tokenization, truncation (head, or head+tail after Sun et al. 2019, "How to Fine-Tune BERT for
Text Classification?"), length-sorted padding per batch and the backend call all happen here,
on the batcher's worker thread.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from serving.backends import Backend, load_backend

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

    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    max_length: int | None = None  # None: as trained (training.json), else the model's own limit
    truncation: Truncation | None = None  # None: as trained, else "head"
    head_tokens: int | None = None  # kept from the start with head_tail; None: HEAD_SHARE of the room
    max_batch_tokens: int = 2048  # padded tokens per forward pass (batch size x longest length)
    threads: int | None = None  # None: the CPUs this process may use
    bf16: Literal["auto", "on", "off"] = "auto"
    bf16_tolerance: float = 0.02  # max |probability change| the bf16 check accepts
    cache_dir: str | None = None  # where ONNX exports go; never inside the model directory


@dataclasses.dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: tuple[float, ...]


# Share of the token budget head+tail truncation keeps from the start: the train step's
# components.tokenize.HEAD_SHARE (not imported: the server does not carry kfp), kept equal by a test.
HEAD_SHARE = 0.25


def trained_settings(model_dir: Path) -> dict:
    """``max_length`` and ``truncation`` the model was trained with (``training.json``), if known."""
    path = model_dir / "training.json"
    training = json.loads(path.read_text()) if path.is_file() else {}
    return {key: training[key] for key in ("max_length", "truncation") if training.get(key)}


def model_max_length(model_dir: Path, tokenizer) -> int:
    """The longest input the model accepts: the tokenizer's limit capped by the position table."""
    config = json.loads((model_dir / "config.json").read_text())
    limits = [config.get("max_position_embeddings", 512), tokenizer.model_max_length]
    return int(min(limit for limit in limits if limit and limit < 1_000_000))


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
        limit = model_max_length(self.model_dir, self.tokenizer)
        # Serve as trained unless told otherwise: the same truncation avoids train/serve skew.
        trained = trained_settings(self.model_dir)
        self.max_length = settings.max_length or min(int(trained.get("max_length", limit)), limit)
        if not 2 < self.max_length <= limit:
            raise ValueError(f"--max_length {self.max_length} is outside 3..{limit}, the model's limit")
        self.truncation = settings.truncation or trained.get("truncation", "head")
        # The raw Rust tokenizer: no padding, no truncation, no "sequence too long" warnings;
        # truncation is done here so that head+tail works the same for every backend.
        self._encoder = self.tokenizer.backend_tokenizer
        self._encoder.no_truncation()
        self._encoder.no_padding()
        self._pad_id = self.tokenizer.pad_token_id or 0
        # The special tokens around one text ([CLS] ... [SEP] for BERT), read off the
        # tokenizer's own post-processor so that other model families work too.
        probe = self._encoder.encode("a", add_special_tokens=True)
        specials = probe.special_tokens_mask
        first, end = specials.index(0), len(specials) - specials[::-1].index(0)
        self._prefix, self._suffix = probe.ids[:first], probe.ids[end:]
        room = self.max_length - len(self._prefix) - len(self._suffix)
        self.head_tokens = settings.head_tokens or int(room * HEAD_SHARE)
        if self.truncation == "head_tail" and not 0 < self.head_tokens < room:
            raise ValueError(f"--head_tokens {self.head_tokens} must be in 1..{room - 1}")
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

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to ``max_length`` (head or head+tail)."""
        room = self.max_length - len(self._prefix) - len(self._suffix)
        encoded = []
        for encoding in self._encoder.encode_batch(list(texts), add_special_tokens=False):
            ids = encoding.ids
            if len(ids) > room:
                if self.truncation == "head_tail":
                    head = self.head_tokens
                    ids = ids[:head] + ids[len(ids) - (room - head):]
                else:
                    ids = ids[:room]
            encoded.append(self._prefix + ids + self._suffix)
        return encoded

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape [len(texts), K], in the order of ``texts``.

        Texts are sorted by length and cut into batches of at most ``max_batch_tokens`` padded
        tokens, each padded only to its own longest text: on CPU the cost is the padded length.
        """
        encoded = self.encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        probabilities = np.empty((len(encoded), len(self.labels)), dtype=np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            # Sorted ascending, so the last text of a batch sets its padded length.
            while end < len(order) and (end - start + 1) * len(encoded[order[end]]) <= self.settings.max_batch_tokens:
                end += 1
            batch = [encoded[i] for i in order[start:end]]
            input_ids, attention_mask = pad(batch, self._pad_id)
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
