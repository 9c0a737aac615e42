"""The classifier to fine-tune, what updates it (base model with a new head, AdamW, schedule) and the
inference engine that scores it while it trains."""

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


def total_steps(batches_per_epoch: int, settings: TrainSettings) -> int:
    """Optimizer steps of the whole run (``max_steps`` caps it), from the (global) batches of an epoch."""
    per_epoch = math.ceil(batches_per_epoch / settings.grad_accum_steps)
    steps = per_epoch * settings.epochs
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


def scoring_engine(model, precision: str, pad_id: int, batch_size: int):
    """The model being trained as a ``textclf.inference.Engine``: its validation passes and the reference
    profile run the engine's backend and batching, in the training precision, on the model's device."""
    from textclf.inference import Batching, Engine, TorchBackend

    backend = TorchBackend(model, precision)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    name = "torch" if precision == "fp32" else f"torch-{precision}"
    return Engine(backend, name, labels, Batching.for_device(backend.device.type, batch_size), pad_id)
