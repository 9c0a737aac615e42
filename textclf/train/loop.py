"""The training loop: epochs of length-grouped batches, a validation pass per epoch, checkpoints.

A plain PyTorch loop rather than ``transformers.Trainer``: on a 2-core CPU the Trainer's
defaults (random batches padded to the longest text, fp32, unfused AdamW) spend most of their
time on padding. Here batches are grouped by length and padded per batch, matrix work runs in
bf16 where the hardware has it, AdamW is fused, and each epoch ends with a checkpoint so that a
retried task resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textclf.base_model import resolve_base_model
from textclf.train import checkpoint
from textclf.train.batches import collate, length_grouped_batches
from textclf.train.model import load_classifier, optimizer_and_schedule, total_steps
from textclf.train.output import save_model_dir
from textclf.train.precision import autocast, pick_precision
from textclf.train.settings import TrainSettings

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Run:
    """What one training run works with, and its progress (``state`` is what a resume restores)."""

    model: object
    step_model: object  # the model, or its torch.compile wrapper
    optimizer: object
    scheduler: object
    scaler: object
    device: object
    precision: str
    pad_id: int
    total_steps: int
    state: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "best_loss": math.inf, "bad_epochs": 0, "history": []})
    seen: int = 0  # texts of this attempt (a resumed run counts only what it trained)
    seen_tokens: int = 0
    steps_this_run: int = 0
    train_seconds: float = 0.0  # the batch loops only: validation passes and checkpoints excluded

    def finished(self, settings: TrainSettings) -> bool:
        return self.state["epoch"] >= settings.epochs or bool(settings.max_steps and self.state["step"] >= settings.max_steps)


def validate(run: Run, rows: list[dict], batch_size: int) -> dict:
    """Loss and accuracy on ``rows`` (dicts with ``input_ids`` and ``label``)."""
    import torch

    from textclf.predict import predict_logits

    logits = predict_logits(run.model, [r["input_ids"] for r in rows], batch_size, run.pad_id, run.device, run.precision)
    labels = torch.as_tensor([r["label"] for r in rows])
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).float().mean().item()}


def optimizer_step(run: Run) -> None:
    import torch

    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.state["step"] += 1
    run.steps_this_run += 1


def log_progress(run: Run, epoch_loss: float, elapsed: float, log_metrics: Callable[[dict, int], None]) -> None:
    lr = run.scheduler.get_last_lr()[0]
    log_metrics({"train/loss": epoch_loss, "train/lr": lr, "train/samples_per_second": run.seen / elapsed}, run.state["step"])
    log.info(
        "epoch %d step %d/%d loss %.4f lr %.2e | %.1f samples/s %.0f tokens/s | eta %.0fs",
        run.state["epoch"] + 1, run.state["step"], run.total_steps, epoch_loss, lr, run.seen / elapsed,
        run.seen_tokens / elapsed, (run.total_steps - run.state["step"]) * elapsed / run.steps_this_run,
    )


def train_epoch(run: Run, rows: list[dict], lengths: list[int], settings: TrainSettings,
                log_metrics: Callable[[dict, int], None]) -> float:
    """One pass over ``rows`` (or up to ``max_steps``); returns the mean training loss."""
    run.model.train()
    batches = length_grouped_batches(lengths, settings.batch_size, settings.seed + run.state["epoch"], settings.group_by_length)
    epoch_loss, epoch_batches = 0.0, 0
    epoch_start = time.perf_counter()
    for i, idx in enumerate(batches):
        batch = {k: v.to(run.device) for k, v in collate([rows[j] for j in idx], run.pad_id).items()}
        with autocast(run.device.type, run.precision):
            loss = run.step_model(**batch).loss / settings.grad_accum_steps
        run.scaler.scale(loss).backward()
        epoch_loss += loss.item() * settings.grad_accum_steps
        epoch_batches += 1
        run.seen += len(idx)
        run.seen_tokens += int(batch["attention_mask"].sum())
        if (i + 1) % settings.grad_accum_steps and i + 1 < len(batches):
            continue
        optimizer_step(run)
        if run.state["step"] % settings.log_every == 0:
            log_progress(run, epoch_loss / epoch_batches, run.train_seconds + time.perf_counter() - epoch_start, log_metrics)
        if settings.max_steps and run.state["step"] >= settings.max_steps:
            break
    run.train_seconds += time.perf_counter() - epoch_start
    return epoch_loss / max(epoch_batches, 1)


def end_epoch(run: Run, train_loss: float, val: dict, settings: TrainSettings, ckpt_dir: Path) -> bool:
    """Record the epoch, keep the best weights; True when training should stop."""
    state = run.state
    state["epoch"] += 1
    state["history"].append({"epoch": state["epoch"], "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}})
    log.info("epoch %d: validation loss %.4f accuracy %.4f", state["epoch"], val["loss"], val["accuracy"])
    if val["loss"] < state["best_loss"]:
        state["best_loss"], state["bad_epochs"] = val["loss"], 0
        checkpoint.save_best(ckpt_dir, run.model)
    else:
        state["bad_epochs"] += 1
    stop_early = bool(settings.early_stopping_patience and state["bad_epochs"] >= settings.early_stopping_patience)
    if stop_early:
        log.info("early stopping: no better validation loss for %d epoch(s)", state["bad_epochs"])
    return stop_early or run.finished(settings)


def start_run(settings: TrainSettings, label_names: list[str], train_rows: int, pad_id: int, ckpt_dir: Path) -> Run:
    """Model, optimizer and schedule on the best device, resumed from ``ckpt_dir`` when it has a resume point."""
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = pick_precision(settings.precision, device.type)
    base_model = resolve_base_model(settings.base_model)  # once: a gs:// model is downloaded here
    model = load_classifier(base_model, label_names, settings.attention_dropout, device)
    steps = total_steps(train_rows, settings)
    optimizer, scheduler = optimizer_and_schedule(model, settings, steps)
    run = Run(model, torch.compile(model) if settings.torch_compile else model, optimizer, scheduler,
              torch.amp.GradScaler(device.type, enabled=precision == "fp16"), device, precision, pad_id, steps)
    resumed = checkpoint.load_resume_point(ckpt_dir, model, optimizer, scheduler, device)
    if resumed is not None:
        run.state = resumed
    return run


def train(
    tokenized_dir: str,
    output_dir: str,
    settings: TrainSettings,
    data_metadata: dict | None = None,
    log_metrics: Callable[[dict, int], None] | None = None,
) -> dict:
    """Fine-tune ``settings.base_model`` on the tokenized dataset and save the Model artifact.

    Args:
        tokenized_dir: the tokenize step's output (``datasets`` directory + ``tokenizer/``).
        output_dir: the Model directory to write (``save_pretrained`` + tokenizer + ``training.json``).
        settings: hyper-parameters.
        data_metadata: the ingested and tokenized datasets' metadata (``labels``, ``fingerprint``,
            ``source``, ``max_length``, ``truncation``).
        log_metrics: called with (metrics, step) at each progress line and each validation (W&B).

    Returns:
        The content of ``training.json``.
    """
    import datasets
    from transformers import AutoTokenizer

    data_metadata = data_metadata or {}
    log_metrics = log_metrics or (lambda metrics, step: None)
    seed_everything(settings.seed)
    splits = datasets.load_from_disk(tokenized_dir)
    train_rows = splits["train"].select_columns(["input_ids", "label"]).to_list()
    val_rows = splits["validation"].select_columns(["input_ids", "label"]).to_list()
    tokenizer = AutoTokenizer.from_pretrained(str(Path(tokenized_dir) / "tokenizer"))
    label_names = data_metadata.get("labels") or [str(i) for i in range(max(r["label"] for r in train_rows) + 1)]

    ckpt_dir = checkpoint.checkpoint_dir_for(output_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    run = start_run(settings, label_names, len(train_rows), tokenizer.pad_token_id, ckpt_dir)
    log.info("training %s on %d texts (%d validation), %d labels, device %s, precision %s, %d steps",
             settings.base_model, len(train_rows), len(val_rows), len(label_names), run.device, run.precision,
             run.total_steps)
    lengths = [len(r["input_ids"]) for r in train_rows]
    start = time.perf_counter()
    while not run.finished(settings):
        train_loss = train_epoch(run, train_rows, lengths, settings, log_metrics)
        val = validate(run, val_rows, settings.eval_batch_size)
        log_metrics({**{f"validation/{k}": v for k, v in val.items()}, "epoch": run.state["epoch"] + 1}, run.state["step"])
        if end_epoch(run, train_loss, val, settings, ckpt_dir):
            break  # finished: best.pt is all that is left to load, no resume point needed
        checkpoint.save_resume_point(ckpt_dir, run.model, run.optimizer, run.scheduler, run.state)

    if not checkpoint.load_best(ckpt_dir, run.model, run.device):
        raise RuntimeError(f"validation loss was never finite ({run.state['history']}): lower learning_rate or check the data")
    return save_model_dir(run, tokenizer, splits["test"], label_names, output_dir, settings, data_metadata,
                          wall=time.perf_counter() - start, ckpt_dir=ckpt_dir)
