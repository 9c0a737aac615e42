"""The classifier to fine-tune and what updates it: base model with a new head, AdamW, schedule."""

from __future__ import annotations

import math

from textclf.train.settings import TrainSettings

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


def attention_dropout_override(base_model: str, attention_dropout: float) -> dict:
    """The config field that holds attention dropout for this architecture, set (or nothing)."""
    from transformers import AutoConfig

    if attention_dropout < 0:
        return {}
    config = AutoConfig.from_pretrained(base_model)
    for name in ("attention_probs_dropout_prob", "attention_dropout"):  # BERT/RoBERTa/..., DistilBERT/...
        if hasattr(config, name):
            return {name: attention_dropout}
    return {}


def load_classifier(base_model: str, label_names: list[str], attention_dropout: float, device):
    """``base_model`` (a local directory) with a fresh classification head for ``label_names``."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        base_model,
        **attention_dropout_override(base_model, attention_dropout),
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    ).to(device)


def steps_per_epoch(batches_per_epoch: int, settings: TrainSettings) -> int:
    return math.ceil(batches_per_epoch / settings.grad_accum_steps)


def total_steps(batches_per_epoch: int, settings: TrainSettings) -> int:
    """Optimizer steps of the whole run (``max_steps`` caps it), from the (global) batches of an epoch;
    ``settings.epochs`` resolved (``TrainSettings.with_epochs_for``)."""
    steps = steps_per_epoch(batches_per_epoch, settings) * settings.epochs
    return min(steps, settings.max_steps) if settings.max_steps else steps


def optimizer_and_schedule(model, settings: TrainSettings, steps: int):
    """Fused AdamW (no weight decay on biases and norms) and a linear warmup then decay."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(NO_DECAY)], "weight_decay": settings.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(steps * settings.warmup_ratio), steps)


def class_weights(labels, num_labels: int, mode: str):
    """Per-class loss weights for ``class_weighting``: None for ``none``; for ``balanced``,
    ``n / (num_labels * n_class)`` over the train split's labels (scikit-learn's rule), a class
    with no train rows weighted like the rarest present one."""
    import numpy as np
    import torch

    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_labels).astype(np.float64)
    counts[counts == 0] = counts[counts > 0].min()
    return torch.tensor(counts.sum() / (num_labels * counts), dtype=torch.float32)
