"""Why a classifier answered as it did: integrated gradients, summed per word of the text.

Integrated gradients (Sundararajan et al., 2017, "Axiomatic Attribution for Deep Networks") over
the word embeddings: the gradient of the explained label's log-odds is integrated along the
straight path from a baseline (the same sequence with every text token replaced by the padding
token, special tokens kept) to the text, with Gauss-Legendre quadrature as in Captum. A token's
attribution is that integral times its embedding's distance from the baseline, summed over the
embedding; a word's is the sum over its tokens. The attributions add up to the log-odds' change
from the baseline to the text (completeness); ``convergence_delta`` says how far the quadrature
is from that, so a caller can ask for more steps. ``tests/serving/test_explain.py`` pins the
numbers to Captum's ``LayerIntegratedGradients``.

Why log-odds, ``log(p / (1 - p))``, and not the probability: a confident model's probability is
flat, then jumps somewhere along the path, and a few quadrature points miss the jump (deltas of
0.7 at 32 steps on a fine-tuned MiniLM); the log-odds move smoothly. Their unit is readable too:
a word with attribution +1 multiplies the odds of the label by e. With two labels the
attributions toward one are exactly the negatives of those toward the other.

Why not Captum itself: ``import captum.attr`` imports matplotlib's pyplot, which the model
server image does not carry; the method is the 30 lines below.

Texts go through :class:`textclf.encoding.TextEncoder`, the same truncation as predictions, so
an explanation describes what the model saw; words map back to the original text's characters.
The model runs in fp32 with gradients for the inputs only (its weights get none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from textclf.encoding import EncodedText, TextEncoder


@dataclasses.dataclass(frozen=True)
class WordAttribution:
    """One word of the text (``text[start:end]``) and its share of the explained log-odds."""

    word: str
    start: int
    end: int
    attribution: float


@dataclasses.dataclass(frozen=True)
class Explanation:
    """The prediction for one text and the attribution of the explained label's log-odds.

    ``log_odds`` and ``baseline_log_odds``: the explained label's at the text and at the baseline;
    ``convergence_delta``: sum of the attributions minus their difference, near 0 when ``steps``
    suffice. ``truncated``: the model saw only part of the text (``words`` are that part).
    """

    label: str
    probabilities: tuple[float, ...]
    explained_label: str
    words: list[WordAttribution]
    truncated: bool
    log_odds: float
    baseline_log_odds: float
    convergence_delta: float


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points in (0, 1) and their weights for integrating over [0, 1] (Captum's ``gausslegendre``)."""
    points, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (points + 1), 0.5 * weights


class Explainer:
    """Integrated gradients for a sequence classifier.

    Args:
        model: a ``transformers`` sequence classifier that accepts ``inputs_embeds`` (BERT,
            RoBERTa, DistilBERT, DeBERTa ...); it is put in eval mode and its weights stop
            requiring gradients, which inference never needs, so it may be shared with a predictor.
        encoder: the encoder the model serves with.
        labels: label names, index = class id.
        max_batch_tokens: most tokens (path points x sequence length) per forward and backward pass.
    """

    def __init__(self, model, encoder: TextEncoder, labels: Sequence[str], max_batch_tokens: int = 4096):
        import torch

        self._torch = torch
        self.model = model.eval().requires_grad_(False)
        self.encoder = encoder
        self.labels = list(labels)
        self.max_batch_tokens = max_batch_tokens

    def explain(self, texts: Sequence[str], steps: int, label: str | None = None) -> list[Explanation]:
        """One :class:`Explanation` per text, of ``label``'s log-odds (default: the predicted label's)."""
        return self.explain_encoded(self.encoder.encode_spans(texts), steps, label)

    def explain_encoded(
        self, encoded: Sequence[EncodedText], steps: int, label: str | None = None
    ) -> list[Explanation]:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        if label is not None and label not in self.labels:
            raise ValueError(f"unknown label {label!r}: the model's labels are {self.labels}")
        target = None if label is None else self.labels.index(label)
        return [self._explain_one(text, steps, target) for text in encoded]

    def _explain_one(self, text: EncodedText, steps: int, target: int | None) -> Explanation:
        torch = self._torch
        device = next(self.model.parameters()).device
        ids = torch.tensor(text.ids, device=device)
        text_tokens = slice(text.prefix_length, text.prefix_length + len(text.spans))
        baseline_ids = ids.clone()
        baseline_ids[text_tokens] = self.encoder.pad_id
        embed = self.model.get_input_embeddings()
        with torch.no_grad():
            inputs, baseline = embed(ids), embed(baseline_ids)
            ends = self._logits(torch.stack([inputs, baseline]))  # [text, baseline] x labels
        probabilities = ends[0].softmax(-1)
        predicted = int(probabilities.argmax())
        target = predicted if target is None else target
        log_odds, baseline_log_odds = (float(value) for value in log_odds_of(ends, target))
        token_attributions = self._integrate(inputs, baseline, target, steps)
        return Explanation(
            label=self.labels[predicted],
            probabilities=tuple(float(p) for p in probabilities),
            explained_label=self.labels[target],
            words=words(text, token_attributions[text_tokens].tolist()),
            truncated=text.truncated,
            log_odds=log_odds,
            baseline_log_odds=baseline_log_odds,
            convergence_delta=float(token_attributions.sum()) - (log_odds - baseline_log_odds),
        )

    def _integrate(self, inputs, baseline, target: int, steps: int):
        """Per-token attributions [sequence length] of ``target``'s log-odds."""
        torch = self._torch
        alphas, weights = (
            torch.tensor(values, dtype=inputs.dtype, device=inputs.device) for values in gauss_legendre(steps)
        )
        difference = inputs - baseline
        integral = torch.zeros_like(inputs)
        chunk = max(1, self.max_batch_tokens // len(inputs))
        for start in range(0, steps, chunk):
            alpha = alphas[start : start + chunk, None, None]
            with torch.enable_grad():
                path = (baseline + alpha * difference).requires_grad_()
                explained = log_odds_of(self._logits(path), target)
                (gradient,) = torch.autograd.grad(explained.sum(), path)
            integral += (gradient * weights[start : start + chunk, None, None]).sum(0)
        return (integral * difference).sum(-1).detach()

    def _logits(self, embeddings):
        """Logits [batch, labels] of the model on embedded sequences [batch, length, hidden], no padding."""
        mask = self._torch.ones(embeddings.shape[:2], dtype=self._torch.long, device=embeddings.device)
        return self.model(inputs_embeds=embeddings, attention_mask=mask).logits.float()


def log_odds_of(logits, target: int):
    """``log(p / (1 - p))`` of label ``target`` for logits [batch, labels]: its logit minus the
    log-sum-exp of the others' (computed so, it neither overflows nor loses precision)."""
    others = logits[:, [index for index in range(logits.shape[1]) if index != target]]
    return logits[:, target] - others.logsumexp(-1)


def words(text: EncodedText, token_attributions: Sequence[float]) -> list[WordAttribution]:
    """Token attributions summed per word (adjacent tokens with one word id), with the word's
    characters in the original text."""
    grouped: list[WordAttribution] = []
    previous = object()
    for word_id, (start, end), attribution in zip(text.word_ids, text.spans, token_attributions):
        if grouped and word_id is not None and word_id == previous and start <= grouped[-1].end:
            last = grouped[-1]
            grouped[-1] = WordAttribution(text.text[last.start : end], last.start, end, last.attribution + attribution)
        else:
            grouped.append(WordAttribution(text.text[start:end], start, end, attribution))
        previous = word_id
    return grouped
