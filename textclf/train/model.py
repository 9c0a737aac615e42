"""The classifier to fine-tune, what updates it (base model with a new head, AdamW, schedule) and the
inference engine that scores it while it trains."""

from __future__ import annotations

import math

from textclf.train.settings import TrainSettings

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


# Config fields that hold each dropout, by architecture (BERT/RoBERTa/MiniLM/..., DistilBERT/...).
DROPOUT_FIELDS = {
    "attention_dropout": ("attention_probs_dropout_prob", "attention_dropout"),
    "hidden_dropout": ("hidden_dropout_prob", "dropout"),
}


def dropout_overrides(base_model: str, **dropouts: float) -> dict:
    """The config fields that hold ``dropouts`` (``attention_dropout``, ``hidden_dropout``) for this
    architecture, set; a negative value keeps the base model's."""
    from transformers import AutoConfig

    wanted = {name: value for name, value in dropouts.items() if value >= 0}
    if not wanted:
        return {}
    config = AutoConfig.from_pretrained(base_model)
    found = {name: _dropout_field(config, name) for name in wanted}
    return {field: wanted[name] for name, field in found.items() if field is not None}


def base_model_dropouts(base_model: str) -> dict[str, float]:
    """The dropouts ``base_model``'s config sets (what a negative dropout setting keeps), by setting name."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_model)
    fields = {name: _dropout_field(config, name) for name in DROPOUT_FIELDS}
    return {name: float(getattr(config, field)) for name, field in fields.items() if field is not None}


def _dropout_field(config, name: str) -> str | None:
    return next((f for f in DROPOUT_FIELDS[name] if hasattr(config, f)), None)


def load_classifier(base_model: str, label_names: list[str], settings: TrainSettings, device):
    """``base_model`` (a local directory) with a fresh classification head for ``label_names``."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        base_model,
        **dropout_overrides(
            base_model, attention_dropout=settings.attention_dropout, hidden_dropout=settings.hidden_dropout
        ),
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
        {
            "params": [p for n, p in model.named_parameters() if not n.endswith(NO_DECAY)],
            "weight_decay": settings.weight_decay,
        },
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


def scoring_engine(model, precision: str, pad_id: int, batch_size: int):
    """The model being trained as a ``textclf.inference.Engine``: its validation passes and the reference
    profile run the engine's backend and batching, in the training precision, on the model's device."""
    from textclf.inference import Batching, Engine, TorchBackend

    backend = TorchBackend(model, precision)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    name = "torch" if precision == "fp32" else f"torch-{precision}"
    return Engine(backend, name, labels, Batching.for_device(backend.device.type, batch_size), pad_id)
