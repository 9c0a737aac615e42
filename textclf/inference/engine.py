"""The inference engine: texts (or token ids) in, label probabilities out, through one backend and
the one length-grouped batching. Every classification of the project runs here: training's
validation and reference profile, the optimize step, evaluation, batch scoring, ``:explain``'s
model and the model server (``serving/`` adds only protocols and kserve glue)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from textclf.encoding import TextEncoder
from textclf.inference.backends import AUTO, Backend, TorchBackend, backend_kind, backend_names
from textclf.inference.batching import MAX_BATCH_TOKENS, PASS_COST_TOKENS, Batching, pad, softmax
from textclf.inference.choice import resolve_backend
from textclf.inference.hardware import cpu_threads
from textclf.settings import setting

Truncation = Literal["head", "head_tail"]


@dataclasses.dataclass
class InferenceSettings:
    """How a Model directory is run; every field is a ``python -m serving`` flag of the same name."""

    backend: str = setting(
        AUTO,
        f"Inference backend: {backend_names()} (torch: fp32 PyTorch), each from the artifact the pipeline's "
        "optimize step built in the Model directory (nothing is exported at start); auto: the one that step chose "
        "(serving.json), torch when the directory has none.",
    )
    max_length: int | None = setting(
        None, "Truncate texts to this many tokens (default: as trained, from training.json; else the model's limit)."
    )
    truncation: Truncation | None = setting(
        None, "Keep the start of long texts (head), or the start and the end (head_tail) (default: as trained)."
    )
    head_tokens: int | None = setting(
        None, "With head_tail: tokens kept from the start (default: a quarter of the room, as in training)."
    )
    max_batch_tokens: int = setting(
        MAX_BATCH_TOKENS, "Padded tokens per forward pass (texts x the longest); larger merged batches are split."
    )
    pass_cost_tokens: int = setting(
        PASS_COST_TOKENS,
        "The fixed cost of one forward pass, in tokens: texts of a "
        "batch are grouped by length so that padding plus this per pass is least.",
    )
    threads: int | None = setting(
        None, "Threads per inference worker (default: the CPUs this container may use / inference_workers)."
    )


@dataclasses.dataclass(frozen=True)
class Prediction:
    label: str
    score: float
    probabilities: tuple[float, ...]


class Engine:
    """One backend of one model, with its encoding and batching.

    Args:
        backend: what turns padded token ids into logits.
        name: the backend's name (``textclf.inference.BACKENDS``).
        labels: label names, index = class id.
        batching: how token ids are cut into forward passes.
        pad_id: the padding token's id.
        encoder: the model's text encoding (None: an engine that scores token ids only, as training does).
        model_dir: the Model directory (where :meth:`torch_model` loads the fp32 weights from).
    """

    def __init__(
        self,
        backend: Backend,
        name: str,
        labels: Sequence[str],
        batching: Batching,
        pad_id: int,
        encoder: TextEncoder | None = None,
        model_dir: str | Path | None = None,
    ):
        self.backend, self.name, self.labels = backend, name, list(labels)
        self.batching, self.pad_id, self.encoder = batching, pad_id, encoder
        self.model_dir = Path(model_dir) if model_dir is not None else None
        # Called with (tokens, padded tokens) after each call: the server counts them for Prometheus.
        self.observe: Callable[[int, int], None] | None = None

    def passes(self, lengths: Sequence[int]) -> list[list[int]]:
        """The forward passes (indices into ``lengths``) this engine runs for texts of these token counts."""
        return self.batching.passes(lengths)

    def logits_of_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits [len(ids), K] (float32), in the order of ``ids``."""
        logits = np.empty((len(ids), len(self.labels)), dtype=np.float32)
        lengths = [len(row) for row in ids]
        padded = 0
        for indices in self.passes(lengths):
            input_ids, attention_mask = pad([ids[i] for i in indices], self.pad_id)
            logits[indices] = self.backend.logits(input_ids, attention_mask)
            padded += input_ids.size
        if self.observe is not None:
            self.observe(sum(lengths), padded)
        return logits

    def probabilities_of_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Class probabilities [len(ids), K] (float32) of token ids already encoded."""
        return softmax(self.logits_of_ids(ids))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities [len(texts), K] (float32), in the order of ``texts``."""
        if self.encoder is None:
            raise ValueError("this engine scores token ids only: it was made without a text encoder")
        return self.probabilities_of_ids(self.encoder.encode(list(texts)))

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One :class:`Prediction` per text, in order."""
        return [
            Prediction(
                label=self.labels[int(row.argmax())], score=float(row.max()), probabilities=tuple(float(p) for p in row)
            )
            for row in self.probabilities(texts)
        ]

    def torch_model(self):
        """The fp32 PyTorch model (``:explain`` needs gradients): the backend's own when it runs
        PyTorch (bf16 is only autocast around the same weights), else loaded from the Model directory."""
        if isinstance(self.backend, TorchBackend):
            return self.backend.model
        if self.model_dir is None:
            raise ValueError(
                f"backend {self.name!r} runs no PyTorch model and this engine knows no Model directory to "
                "load the fp32 weights from: build it with load_engine or pass model_dir"
            )
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(self.model_dir).eval()


def model_labels(model_dir: str | Path) -> list[str]:
    """Label names by class id, from ``config.json``'s ``id2label`` (read without transformers)."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    id2label = config.get("id2label") or {}
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(len(id2label))]


def load_engine(model_dir: str | Path, settings: InferenceSettings | None = None) -> Engine:
    """The engine for a Model directory: the backend ``settings.backend`` names (``auto``: the
    optimize step's choice) from its prebuilt artifact, the encoding as trained, and the batching.

    Raises:
        FileNotFoundError: not a Model directory, or the backend's artifact is not in it.
        ValueError: an unknown backend name.
    """
    settings = settings or InferenceSettings()
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: not a Model artifact directory")
    name = resolve_backend(model_dir, settings.backend)
    kind = backend_kind(name)
    encoder = TextEncoder.for_model(model_dir, None, settings.max_length, settings.truncation, settings.head_tokens)
    batching = kind.batching(Batching(settings.max_batch_tokens, settings.pass_cost_tokens))
    backend = kind.load(model_dir, cpu_threads(settings.threads))
    return Engine(backend, name, model_labels(model_dir), batching, encoder.pad_id, encoder, model_dir)
