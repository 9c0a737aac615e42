"""The fine-tune's hyper-parameters, recorded in ``training.json`` (each field a pipeline parameter)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from textclf.inference.batching import MAX_BATCH_TOKENS
from textclf.settings import base_model_setting, require_at_least, seed_setting, setting

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CLASS_WEIGHTINGS = ("none", "balanced")
AUTO_MAX_EPOCHS = 20  # epochs 0 (auto) on tiny data: enough passes, early stopping ends it


@dataclass
class TrainSettings:
    """How the base model is fine-tuned."""

    base_model: str = base_model_setting()
    epochs: int = setting(
        0,
        "Passes over the training split; 0 (auto): as many as make min_train_steps optimizer "
        f"steps, 1 to {AUTO_MAX_EPOCHS} (small data trains for more epochs, large data for one). "
        "Early stopping on the validation loss may end sooner.",
    )
    learning_rate: float = setting(1e-4, "Peak learning rate after linear warmup.")
    batch_size: int = setting(
        32,
        "Examples per micro-batch and training process (times grad_accum_steps and the "
        "number of processes, num_nodes x gpus_per_node = effective batch).",
    )
    grad_accum_steps: int = setting(1, "Micro-batches accumulated per optimizer step.")
    warmup_ratio: float = setting(0.06, "Share of the steps with a linear warmup; the rest decays linearly to zero.")
    weight_decay: float = setting(0.01, "AdamW weight decay (not applied to biases and LayerNorm weights).")
    group_by_length: bool = setting(True, "Batch texts of similar length together so that padding stays small.")
    precision: str = setting(
        "auto",
        "auto (bf16 on GPUs and CPUs with bf16 instructions, fp16 on older GPUs, else fp32), fp32, bf16 or fp16.",
        choices=PRECISIONS,
    )
    early_stopping_patience: int = setting(
        2, "Epochs without a better validation loss before stopping; 0 never stops early."
    )
    max_steps: int = setting(0, "Stop after this many optimizer steps; 0 means no limit (for smoke runs).")
    seed: int = seed_setting()
    torch_compile: bool = setting(False, "Compile the model with torch.compile (pays off on GPUs and long runs).")
    # 0 by default: PyTorch's fused attention (SDPA) then runs on CPUs; attention dropout forces the
    # unfused path and doubled MiniLM's step time on a 2-core CPU (3.9 s vs 1.9 s at 32x208 tokens).
    attention_dropout: float = setting(
        0.0,
        "Dropout on attention probabilities; 0 keeps fused attention (about 2x "
        "faster training on CPUs); negative keeps the base model's.",
    )
    hidden_dropout: float = setting(
        -1.0,
        "Dropout on hidden states and the classification head's input (it keeps "
        "fused attention); negative keeps the base model's (0.1 for MiniLM).",
    )
    eval_batch_size: int = setting(
        64,
        "Most texts in one pass of the validation and reference-profile scoring (on "
        f"CPUs also at most {MAX_BATCH_TOKENS:,} padded tokens a pass, grouped by length).",
    )
    log_every: int = setting(20, "Optimizer steps between progress lines.")
    dataloader_workers: int = setting(
        2,
        "Worker processes per training process that read batches from the "
        "memory-mapped splits and pad them; 0 reads them in the training process.",
    )
    checkpoint_every_steps: int = setting(
        0,
        "Write a resume checkpoint every this many optimizer steps (0: by "
        "time and at epoch ends only). A retried or preempted task resumes at the "
        "batch it stopped at, with the same random state.",
    )
    checkpoint_every_minutes: float = setting(
        10.0,
        "Write a resume checkpoint once this many minutes have passed "
        "since the last one, so a preempted node loses at most that much "
        "training (0: by steps and at epoch ends only).",
    )
    # Small, many-class and imbalanced data (issue 23); see docs/training.md.
    min_train_steps: int = setting(
        2000,
        "With epochs 0 (auto): the optimizer steps the run is planned for, in whole "
        "epochs (e.g. 14 epochs of 151 steps for 5,000 texts; one epoch from 64,000 texts "
        "up), so that small data trains long enough.",
    )
    class_weighting: str = setting(
        "none",
        "none, or balanced: weigh each class's training loss by n_train / "
        "(n_classes x its n_train) (scikit-learn's 'balanced'), for imbalanced data "
        "where a rare class matters. The validation loss stays unweighted.",
        choices=CLASS_WEIGHTINGS,
    )

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"class_weighting must be one of {CLASS_WEIGHTINGS}, got {self.class_weighting!r}")
        require_at_least(self, 1, "batch_size", "grad_accum_steps", "eval_batch_size", "log_every", "min_train_steps")
        require_at_least(
            self, 0, "epochs", "dataloader_workers", "checkpoint_every_steps", "checkpoint_every_minutes", "max_steps"
        )

    def with_epochs_for(self, steps_per_epoch: int) -> TrainSettings:
        """These settings with ``epochs`` resolved: as given, or (0, auto) the fewest whole epochs of
        ``steps_per_epoch`` optimizer steps that make ``min_train_steps``, 1 to ``AUTO_MAX_EPOCHS``."""
        if self.epochs:
            return self
        epochs = min(max(math.ceil(self.min_train_steps / max(steps_per_epoch, 1)), 1), AUTO_MAX_EPOCHS)
        return dataclasses.replace(self, epochs=epochs)
