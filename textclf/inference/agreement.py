"""The one agreement check: how far a backend's answers are from the fp32 reference's on the same texts.

Used by the optimize step (each backend against fp32 PyTorch on the validation split), and by the
tests that hold backends to a tolerance. Accumulated batch by batch: memory does not grow with
the texts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass
class Agreement:
    """Label flips and probability changes of one backend against the reference, so far.

    ``max_probability_change`` is the largest |p - p_reference| over texts and classes; the mean is
    over texts of each text's largest change. ``accuracy`` counts against the true labels, when given.
    """

    texts: int = 0
    label_flips: int = 0
    max_probability_change: float = 0.0
    sum_probability_change: float = 0.0
    correct: int = 0
    labelled: int = 0

    def add(
        self, reference: np.ndarray, probabilities: np.ndarray, labels: Sequence[int] | np.ndarray | None = None
    ) -> None:
        """One batch: ``reference`` and ``probabilities`` [N, K] of the same N texts (and their true labels)."""
        if reference.shape != probabilities.shape:
            raise ValueError(f"shapes differ: reference {reference.shape}, backend {probabilities.shape}")
        change = np.abs(probabilities.astype(np.float64) - reference).max(axis=1) if len(reference) else np.zeros(0)
        predicted = probabilities.argmax(axis=1)
        self.texts += len(reference)
        self.label_flips += int((predicted != reference.argmax(axis=1)).sum())
        self.max_probability_change = max(self.max_probability_change, float(change.max(initial=0.0)))
        self.sum_probability_change += float(change.sum())
        if labels is not None:
            self.correct += int((predicted == np.asarray(labels)).sum())
            self.labelled += len(reference)

    @property
    def flip_rate(self) -> float:
        """Share of texts whose label differs from the reference's (NaN before any text)."""
        return self.label_flips / self.texts if self.texts else math.nan

    def to_dict(self) -> dict:
        result = {
            "texts": self.texts,
            "label_flips": self.label_flips,
            "flip_rate": self.flip_rate,
            "max_probability_change": self.max_probability_change,
            "mean_probability_change": self.sum_probability_change / self.texts if self.texts else math.nan,
        }
        if self.labelled:
            result["accuracy"] = self.correct / self.labelled
        return result
