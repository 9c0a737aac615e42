"""Length-grouped batching: which texts run through the model together, and padding them.

The one batching of the project: training's validation, the reference profile, the optimize step,
evaluation and the model server all cut their texts into forward passes here.

On a CPU a forward pass costs about its padded tokens (texts x the longest) plus a fixed cost per
pass, so texts are sorted by length and grouped by dynamic programming (:func:`plan_passes`) to
minimise padded tokens plus ``pass_cost_tokens`` per pass, each pass within ``max_tokens``.
Measured (docs/benchmarks-serving.md, docs/benchmarks.md): MiniLM on 2-core AMD CPUs pays a fixed
~4-6 ms per PyTorch pass (~32 tokens' worth at 256 tokens) and under 1 ms in ONNX Runtime; CPU
time per review barely falls beyond 2-4 texts a pass and rises again past ~2,000 padded tokens
(bf16 at 352 tokens: 8 texts a pass 41.5 reviews/s, 16 39.2, 64 33.3; int8 at 256 tokens: 4 texts
33.1 ms per review, 16 35.9): a layer's activations stay in the caches.

On a GPU padding costs little next to a pass's launch overhead: the sorted texts are cut into
passes of ``max_texts``, with no token budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

MAX_BATCH_TOKENS = 2048  # padded tokens per CPU pass (see above)
PASS_COST_TOKENS = 32  # the fixed cost of a PyTorch pass on a CPU, in tokens


@dataclasses.dataclass(frozen=True)
class Batching:
    """How texts are cut into forward passes.

    Args:
        max_tokens: most padded tokens (texts x the longest) in one pass; 0: no budget (GPUs).
        pass_cost_tokens: the fixed cost of one pass, in tokens, that the grouping weighs against padding.
        max_texts: most texts in one pass; 0: no limit.
    """

    max_tokens: int = MAX_BATCH_TOKENS
    pass_cost_tokens: int = PASS_COST_TOKENS
    max_texts: int = 0

    def __post_init__(self):
        if self.max_tokens < 0 or self.pass_cost_tokens < 0 or self.max_texts < 0:
            raise ValueError(f"batching limits must not be negative, got {self}")
        if not self.max_tokens and not self.max_texts:
            raise ValueError("batching needs a token budget (max_tokens) or a text limit (max_texts)")

    @classmethod
    def for_device(cls, device_type: str, batch_size: int) -> Batching:
        """CPUs: the token budget and at most ``batch_size`` texts; GPUs: passes of ``batch_size`` texts."""
        if device_type == "cpu":
            return cls(max_texts=batch_size)
        return cls(max_tokens=0, pass_cost_tokens=0, max_texts=batch_size)

    def passes(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices of ``lengths`` cut into passes, each in ascending length; every index once."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        if not self.max_tokens:
            return [order[start : start + self.max_texts] for start in range(0, len(order), self.max_texts)]
        cuts = plan_passes([lengths[i] for i in order], self.max_tokens, self.pass_cost_tokens, self.max_texts)
        return [order[start:end] for start, end in cuts]


def plan_passes(
    lengths: Sequence[int], max_tokens: int, pass_cost_tokens: int, max_texts: int = 0
) -> list[tuple[int, int]]:
    """Forward passes ``[start, end)`` over ascending ``lengths``, each padded to its last (longest)
    text: the grouping that costs least in padded tokens plus ``pass_cost_tokens`` per pass
    (dynamic programming), each pass within ``max_tokens`` and ``max_texts`` (a text longer than
    the budget runs alone).

    Cutting only when a pass outgrows the budget pads short texts to long ones (~20% more tokens on
    IMDB reviews at 256); one pass per text pays the fixed cost of a pass each time.
    """
    count = len(lengths)
    best = [0.0] + [float("inf")] * count  # best[end]: least cost of the first ``end`` texts
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        longest = lengths[end - 1]
        for start in range(end - 1, -1, -1):
            size = end - start
            if size > 1 and (size * longest > max_tokens or (max_texts and size > max_texts)):
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
    """Row-wise softmax in float64, returned as float32."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
