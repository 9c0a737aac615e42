"""The training loop: epochs of length-grouped batches, a validation pass per epoch, checkpoints.

A plain PyTorch loop rather than ``transformers.Trainer``: on a 2-core CPU the Trainer's
defaults (random batches padded to the longest text, fp32, unfused AdamW) spend most of their
time on padding. Here batches are grouped by length and padded per batch, matrix work runs in
bf16 where the hardware has it and AdamW is fused.

Data parallel: started by ``torchrun`` (one process per GPU, or several CPU processes on gloo),
each process trains on its slice of every global batch (``textclf.train.data``) inside
``DistributedDataParallel``, which averages the gradients; metrics are reduced across ranks and
only rank 0 writes the model directory, checkpoints and tracking. One process is the plain loop.

Checkpoints every ``checkpoint_every_steps`` optimizer steps or ``checkpoint_every_minutes``
minutes and at each epoch's end hold the exact position (epoch, step, batch) and random state,
so a retried or preempted task ends with the weights an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from textclf.base_model import resolve_base_model
from textclf.train import checkpoint, distributed
from textclf.train.batches import collate  # noqa: F401 - re-exported: tests count the batches a run pads
from textclf.train.data import RankBatches, TokenRows, global_batches, loader, token_lengths
from textclf.train.distributed import Ranks
from textclf.train.model import (
    class_weights,
    load_classifier,
    optimizer_and_schedule,
    scoring_engine,
    steps_per_epoch,
    total_steps,
)
from textclf.train.output import save_model_dir
from textclf.train.precision import autocast, pick_precision
from textclf.train.settings import AUTO_MAX_EPOCHS, TrainSettings

if TYPE_CHECKING:  # torch is imported when training starts, not when this module is
    import numpy as np
    import torch
    from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)


def train_split_labels(split):
    """The train split's label ids as one array, from its Arrow column (no Python object per row)."""
    return split.data.column("label").to_numpy()


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_state() -> dict:
    """The loop's position and record: what a resume point restores (the same on every rank)."""
    return {"epoch": 0, "step": 0, "batch": 0, "best_loss": math.inf, "bad_epochs": 0, "history": []}


@dataclass
class Split:
    """A tokenized split: its rows (read on demand) and their token counts."""

    rows: TokenRows
    lengths: list[int]

    @classmethod
    def of(cls, split) -> Split:
        return cls(TokenRows(split), token_lengths(split))


@dataclass
class Run:
    """What one training run works with, and its progress (``state`` is what a resume restores)."""

    model: torch.nn.Module  # a transformers sequence classifier
    step_model: torch.nn.Module  # what the batches go through: the model, DDP around it, or torch.compile of either
    ddp: DistributedDataParallel | None  # None with one process
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    precision: str
    pad_id: int
    total_steps: int
    ranks: Ranks = field(default_factory=Ranks)
    class_weights: torch.Tensor | None = (
        None  # per-class loss weights on the device (class_weighting), None: plain loss
    )
    state: dict = field(default_factory=new_state)
    epoch_loss: float = 0.0  # this rank's sum of batch losses in the current epoch (saved per rank)
    epoch_batches: int = 0
    seen: int = 0  # texts of this attempt, this rank (a resumed run counts only what it trained)
    seen_tokens: int = 0
    steps_this_run: int = 0
    train_seconds: float = 0.0  # the batch loops only: validation passes and checkpoints excluded
    last_checkpoint: float = field(default_factory=time.monotonic)
    # The validation split's probabilities [rows, K] from the last validation pass, and from the best
    # epoch's: the reference profile reuses the latter instead of scoring the split again (not kept in
    # checkpoints: a run resumed after its best epoch scores it again).
    last_validation: np.ndarray | None = None
    best_validation: np.ndarray | None = None

    def finished(self, settings: TrainSettings) -> bool:
        return self.state["epoch"] >= settings.epochs or self.reached_max_steps(settings)

    def reached_max_steps(self, settings: TrainSettings) -> bool:
        return bool(settings.max_steps and self.state["step"] >= settings.max_steps)

    def mid_epoch(self) -> bool:
        return self.state["batch"] > 0


class ValidationProbe(Protocol):
    """Extra validation passes inside epochs, and every validation's numbers: what a tuning trial
    reports to its pruner (``textclf.tune.trial``). ``progress`` is in epochs (1.5: half of the second)."""

    def due(self, progress: float) -> bool:
        """Whether to score the validation split now, after an optimizer step (never at an epoch's end,
        which is scored anyway)."""

    def report(self, metrics: dict, progress: float) -> None:
        """The validation loss and accuracy at ``progress``; may raise to stop training (a pruned trial)."""


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


def reduced_progress(run: Run) -> tuple[float, int, int]:
    """Mean training loss of the epoch so far, texts and tokens seen: over all ranks."""
    loss, batches, seen, tokens = distributed.sum_across_ranks(
        [run.epoch_loss, run.epoch_batches, run.seen, run.seen_tokens], run.device
    )
    return loss / max(batches, 1), int(seen), int(tokens)


def log_progress(run: Run, elapsed: float, log_metrics: Callable[[dict, int], None]) -> None:
    epoch_loss, seen, tokens = reduced_progress(run)  # a collective: every rank calls this
    if not run.ranks.is_main:
        return
    lr = run.scheduler.get_last_lr()[0]
    log_metrics(
        {"train/loss": epoch_loss, "train/lr": lr, "train/samples_per_second": seen / elapsed}, run.state["step"]
    )
    log.info(
        "epoch %d step %d/%d loss %.4f lr %.2e | %.1f samples/s %.0f tokens/s | eta %.0fs",
        run.state["epoch"] + 1,
        run.state["step"],
        run.total_steps,
        epoch_loss,
        lr,
        seen / elapsed,
        tokens / elapsed,
        (run.total_steps - run.state["step"]) * elapsed / max(run.steps_this_run, 1),
    )


def save_resume_point(run: Run, store: checkpoint.Checkpoints) -> None:
    """Every rank hands over its RNG states and running loss; rank 0 writes the resume point."""
    mine = {"rng": checkpoint.rng_states(), "epoch_loss": run.epoch_loss, "epoch_batches": run.epoch_batches}
    states = distributed.gather_objects(mine)
    if run.ranks.is_main:
        checkpoint.save_resume_point(store, run, states)
    run.last_checkpoint = time.monotonic()


def checkpoint_due(run: Run, settings: TrainSettings) -> bool:
    by_steps = bool(settings.checkpoint_every_steps and run.state["step"] % settings.checkpoint_every_steps == 0)
    if not settings.checkpoint_every_minutes:
        return by_steps
    by_time = time.monotonic() - run.last_checkpoint >= settings.checkpoint_every_minutes * 60
    # Clocks differ between ranks: rank 0's "now" would do, but all must agree (the save is a collective).
    return distributed.any_rank(by_steps or by_time, run.device)


def batch_loss(run: Run, batch: dict):
    """The batch's mean cross-entropy: the model's own, or weighted per class (``class_weighting``)."""
    if run.class_weights is None:
        return run.step_model(**batch).loss
    import torch

    logits = run.step_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return torch.nn.functional.cross_entropy(logits.float(), batch["labels"], weight=run.class_weights)


def gradient_sync(run: Run, sync: bool):
    """Skip DDP's gradient all-reduce on micro-batches that only accumulate."""
    return run.ddp.no_sync() if run.ddp is not None and not sync else contextlib.nullcontext()


def train_epoch(
    run: Run,
    data: Split,
    settings: TrainSettings,
    store: checkpoint.Checkpoints,
    log_metrics: Callable[[dict, int], None],
    probe: Callable[[float], None] | None = None,
) -> float:
    """The rest of the current epoch (all of it, unless resumed mid-epoch), or up to ``max_steps``;
    returns the epoch's mean training loss over all ranks. ``probe`` is called after each optimizer
    step with the progress in epochs."""
    run.step_model.train()
    ranks, accum = run.ranks, settings.grad_accum_steps
    batches = global_batches(
        data.lengths,
        settings.batch_size,
        ranks.world_size,
        settings.seed + run.state["epoch"],
        settings.group_by_length,
    )
    sampler = RankBatches(batches, ranks.rank, ranks.world_size, start=run.state["batch"])
    pin = run.device.type == "cuda"
    epoch_start = time.perf_counter()
    for position, batch in enumerate(
        loader(data.rows, sampler, run.pad_id, settings.dataloader_workers, pin, settings.seed), start=sampler.start
    ):
        if run.reached_max_steps(settings):
            break
        weight = sampler.slice(position).loss_weight  # 1.0 unless the global batch split unevenly
        ends_step = (position + 1) % accum == 0 or position + 1 == len(batches)
        batch = {k: v.to(run.device, non_blocking=pin) for k, v in batch.items()}
        with gradient_sync(run, ends_step):
            with autocast(run.device.type, run.precision):
                loss = batch_loss(run, batch) * weight / accum
            run.scaler.scale(loss).backward()
        run.epoch_loss += loss.item() * accum
        run.epoch_batches += 1
        run.seen += len(batch["input_ids"])
        run.seen_tokens += int(batch["attention_mask"].sum())
        run.state["batch"] = position + 1
        if not ends_step:
            continue
        optimizer_step(run)
        if probe is not None:
            probe(run.state["epoch"] + (position + 1) / len(batches))
        if run.state["step"] % settings.log_every == 0:
            log_progress(run, run.train_seconds + time.perf_counter() - epoch_start, log_metrics)
        if checkpoint_due(run, settings):
            save_resume_point(run, store)
    run.train_seconds += time.perf_counter() - epoch_start
    return reduced_progress(run)[0]


def validate(run: Run, data: Split, settings: TrainSettings) -> dict:
    """Loss and accuracy on ``data`` (input_ids and label), each rank scoring every world_size-th pass.

    The passes and the forward call are the inference engine's (``textclf.inference``: length-grouped,
    in the training precision); the rows of each pass come through the DataLoader from the
    memory-mapped split. The loss is taken over all logits at once, in row order, as with one process.
    """
    import torch

    engine = scoring_engine(run.model, run.precision, run.pad_id, settings.eval_batch_size)
    mine = engine.passes(data.lengths)[run.ranks.rank :: run.ranks.world_size]
    parts = []
    for idx, batch in zip(mine, loader(data.rows, mine, run.pad_id, settings.dataloader_workers, False, settings.seed)):
        logits = engine.backend.logits(batch["input_ids"].numpy(), batch["attention_mask"].numpy())
        parts.append((idx, torch.from_numpy(logits), batch["labels"]))
    parts = [part for rank_parts in distributed.gather_objects(parts) for part in rank_parts]
    logits = torch.empty(len(data.lengths), parts[0][1].shape[-1]) if parts else torch.empty(0, 1)
    labels = torch.empty(len(data.lengths), dtype=torch.long)
    for idx, part_logits, part_labels in parts:
        logits[idx], labels[idx] = part_logits, part_labels
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    run.last_validation = torch.softmax(logits, -1).numpy()
    return {"loss": loss, "accuracy": (logits.argmax(-1) == labels).float().mean().item()}


def end_epoch(run: Run, train_loss: float, val: dict, settings: TrainSettings, store: checkpoint.Checkpoints) -> bool:
    """Record the epoch, keep the best weights; True when training should stop."""
    state = run.state
    state["epoch"] += 1
    state["batch"], run.epoch_loss, run.epoch_batches = 0, 0.0, 0
    state["history"].append(
        {"epoch": state["epoch"], "train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}}
    )
    if val["loss"] < state["best_loss"]:
        state["best_loss"], state["bad_epochs"] = val["loss"], 0
        run.best_validation = run.last_validation
        if run.ranks.is_main:
            checkpoint.save_best(store, run.model)
    else:
        state["bad_epochs"] += 1
    if run.ranks.is_main:
        log.info("epoch %d: validation loss %.4f accuracy %.4f", state["epoch"], val["loss"], val["accuracy"])
    stop_early = bool(settings.early_stopping_patience and state["bad_epochs"] >= settings.early_stopping_patience)
    if stop_early and run.ranks.is_main:
        log.info("early stopping: no better validation loss for %d epoch(s)", state["bad_epochs"])
    return stop_early or run.finished(settings)


def wrap_for_training(model, ranks: Ranks, device, compile_model: bool):
    """(what batches go through, the DDP wrapper or None): DDP across ranks, then torch.compile."""
    import torch

    ddp = None
    if ranks.distributed:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    wrapped = ddp or model
    return (torch.compile(wrapped) if compile_model else wrapped), ddp


def start_run(
    settings: TrainSettings,
    label_names: list[str],
    batches_per_epoch: int,
    pad_id: int,
    store: checkpoint.Checkpoints,
    ranks: Ranks,
    device,
    train_labels=(),
) -> Run:
    """Model, optimizer and schedule on this rank's device, resumed from ``store`` when it has a resume point;
    ``train_labels`` (the train split's label ids) give the ``class_weighting`` weights."""
    import torch

    precision = pick_precision(settings.precision, device.type)
    base_model = resolve_base_model(settings.base_model)  # once: a gs:// model is downloaded here
    model = load_classifier(base_model, label_names, settings, device)
    steps = total_steps(batches_per_epoch, settings)
    optimizer, scheduler = optimizer_and_schedule(model, settings, steps)
    step_model, ddp = wrap_for_training(model, ranks, device, settings.torch_compile)
    run = Run(
        model,
        step_model,
        ddp,
        optimizer,
        scheduler,
        torch.amp.GradScaler(device.type, enabled=precision == "fp16"),
        device,
        precision,
        pad_id,
        steps,
        ranks,
    )
    weights = class_weights(train_labels, len(label_names), settings.class_weighting)
    run.class_weights = None if weights is None else weights.to(device)
    resumed = checkpoint.load_resume_point(store, run)
    if resumed is not None:
        run.state = resumed["state"]
        run.epoch_loss, run.epoch_batches = resumed["rank"]["epoch_loss"], resumed["rank"]["epoch_batches"]
        checkpoint.set_rng_states(resumed["rank"]["rng"])  # last: nothing may draw from them before training
    return run


def train(
    tokenized_dir: str,
    output_dir: str | None,
    settings: TrainSettings,
    data_metadata: dict | None = None,
    log_metrics: Callable[[dict, int], None] | None = None,
    checkpoints: str | None = None,
    probe: ValidationProbe | None = None,
) -> dict | None:
    """Fine-tune ``settings.base_model`` on the tokenized dataset and save the Model artifact.

    Run once per process; under ``torchrun`` every rank calls it and trains data-parallel.

    Args:
        tokenized_dir: the tokenize step's output (``datasets`` directory + ``tokenizer/``).
        output_dir: the Model directory to write (``save_pretrained`` + tokenizer + ``training.json``);
            None writes no model (a tuning trial: its record is what it is for).
        settings: hyper-parameters.
        data_metadata: the ingested and tokenized datasets' metadata (``labels``, ``fingerprint``,
            ``source``, ``max_length``, ``truncation``), and ``tuning``: the tune step's record when it
            chose some settings (``textclf.tune.report.apply_tuning``).
        log_metrics: called on rank 0 with (metrics, step) at each progress line and each validation (W&B).
        checkpoints: where checkpoints go, a folder or ``gs://`` prefix; default ``<output_dir>.checkpoints``
            (required without ``output_dir``).
        probe: told every validation's numbers, and asked after each optimizer step whether to score
            the validation split in mid-epoch too (see :class:`ValidationProbe`).

    Returns:
        The content of ``training.json`` on rank 0 (without ``output_dir``: the epochs' ``history``,
        ``best_validation_loss`` and ``train_seconds``); None on the other ranks.
    """
    if not checkpoints and output_dir is None:
        raise ValueError("train: checkpoints is required when output_dir is None (no model to put them beside)")
    location = checkpoints or checkpoint.checkpoint_location_for(str(output_dir))
    ranks = distributed.ranks_from_env()
    device = distributed.start(ranks)
    try:
        store = checkpoint.Checkpoints(location)
        return _train(
            tokenized_dir,
            output_dir,
            settings,
            data_metadata or {},
            log_metrics or (lambda metrics, step: None),
            store,
            ranks,
            device,
            probe,
        )
    finally:
        distributed.stop()


def planned(settings: TrainSettings, per_epoch: int, ranks: Ranks) -> TrainSettings:
    """``settings`` with ``epochs`` resolved (0, auto: ``TrainSettings.with_epochs_for``), said in the log."""
    resolved = settings.with_epochs_for(per_epoch)
    if not settings.epochs and ranks.is_main:
        log.info(
            "epochs 0 (auto): %d epoch(s) of %d optimizer steps for at least min_train_steps %d (at most %d "
            "epochs); early stopping may end sooner",
            resolved.epochs,
            per_epoch,
            settings.min_train_steps,
            AUTO_MAX_EPOCHS,
        )
    return resolved


def probe_step(run: Run, val_data: Split, settings: TrainSettings, probe: ValidationProbe | None):
    """What ``train_epoch`` calls after each optimizer step: a validation pass when ``probe`` wants one."""
    if probe is None:
        return None

    def after_step(progress: float) -> None:
        if probe.due(progress):
            metrics = validate(run, val_data, settings)
            run.step_model.train()  # validate left it in eval mode
            probe.report(metrics, progress)

    return after_step


def run_epochs(
    run: Run,
    train_data: Split,
    val_data: Split,
    settings: TrainSettings,
    store: checkpoint.Checkpoints,
    log_metrics: Callable[[dict, int], None],
    probe: ValidationProbe | None,
    batches_per_epoch: int,
) -> None:
    """Epochs from where the run stands (a resumed run mid-epoch) until its end or early stopping, each
    validated and logged, with a resume point after each that does not finish training."""
    after_step = probe_step(run, val_data, settings, probe)
    while not run.finished(settings) or run.mid_epoch():
        train_loss = train_epoch(run, train_data, settings, store, log_metrics, after_step)
        val = validate(run, val_data, settings)
        if run.ranks.is_main:
            log_metrics(
                {**{f"validation/{k}": v for k, v in val.items()}, "epoch": run.state["epoch"] + 1}, run.state["step"]
            )
        if probe is not None:
            probe.report(val, run.state["epoch"] + run.state["batch"] / batches_per_epoch)
        if end_epoch(run, train_loss, val, settings, store):
            break  # finished: best.pt is all that is left to load, no resume point needed
        save_resume_point(run, store)


def _train(
    tokenized_dir: str,
    output_dir: str | None,
    settings: TrainSettings,
    data_metadata: dict,
    log_metrics: Callable[[dict, int], None],
    store: checkpoint.Checkpoints,
    ranks: Ranks,
    device,
    probe: ValidationProbe | None,
) -> dict | None:
    import datasets
    from transformers import AutoTokenizer

    seed_everything(settings.seed)
    splits = datasets.load_from_disk(tokenized_dir)
    train_data, val_data = Split.of(splits["train"]), Split.of(splits["validation"])
    tokenizer = AutoTokenizer.from_pretrained(str(Path(tokenized_dir) / "tokenizer"))
    label_names = data_metadata.get("labels") or [str(i) for i in range(max(splits["train"]["label"]) + 1)]
    batches_per_epoch = len(
        global_batches(
            train_data.lengths, settings.batch_size, ranks.world_size, settings.seed, settings.group_by_length
        )
    )
    settings = planned(settings, steps_per_epoch(batches_per_epoch, settings), ranks)
    train_labels = train_split_labels(splits["train"]) if settings.class_weighting != "none" else ()
    run = start_run(
        settings, label_names, batches_per_epoch, tokenizer.pad_token_id, store, ranks, device, train_labels
    )
    if ranks.is_main:
        log.info(
            "training %s on %d texts (%d validation), %d labels, %d process(es), device %s, precision %s, %d steps",
            settings.base_model,
            len(train_data.lengths),
            len(val_data.lengths),
            len(label_names),
            ranks.world_size,
            run.device,
            run.precision,
            run.total_steps,
        )
    start = time.perf_counter()
    run_epochs(run, train_data, val_data, settings, store, log_metrics, probe, batches_per_epoch)
    _, run.seen, run.seen_tokens = reduced_progress(run)  # texts of all ranks, for training.json
    distributed.barrier()
    if not ranks.is_main:
        return None
    if output_dir is None:
        store.remove()
        return {
            "history": run.state["history"],
            "best_validation_loss": run.state["best_loss"],
            "train_seconds": run.train_seconds,
        }
    if not checkpoint.load_best(store, run.model, run.device):
        raise RuntimeError(
            f"validation loss was never finite ({run.state['history']}): lower learning_rate or check the data"
        )
    summary = save_model_dir(
        run,
        tokenizer,
        tokenized_dir,
        label_names,
        output_dir,
        settings,
        data_metadata,
        wall=time.perf_counter() - start,
    )
    store.remove()
    return summary
