"""Train step: fine-tune a sequence classifier on the tokenized splits.

A plain PyTorch loop rather than ``transformers.Trainer``: on a 2-core CPU the Trainer's
defaults (random batches padded to the longest text, fp32, unfused AdamW) spend most of their
time on padding. Here batches are grouped by length and padded per batch, matrix work runs in
bf16 where the hardware has it, AdamW is fused, and each epoch ends with a checkpoint so that a
retried task resumes where it stopped.
"""


import json
import logging
import math
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kfp import dsl

from components.base_model import DEFAULT_BASE_MODEL, resolve_base_model
from components.images import gpu_step

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainSettings:
    """Hyper-parameters of the fine-tune (recorded in ``training.json``).

    Attributes:
        base_model: ``offline:all-MiniLM-L6-v2``, a hub id, a local directory (``gs://`` is copied first).
        epochs: passes over the training split (early stopping may end sooner).
        learning_rate: peak learning rate after warmup.
        batch_size: examples per optimizer step and device (times ``grad_accum_steps`` = effective batch).
        grad_accum_steps: micro-batches accumulated per optimizer step.
        warmup_ratio: share of the steps with a linear warmup; the rest decays linearly to zero.
        weight_decay: AdamW weight decay (not applied to biases and LayerNorm weights).
        group_by_length: batch texts of similar length together so padding stays small.
        precision: ``auto`` = bf16 on GPUs and CPUs with bf16 instructions, fp16 on older GPUs, else fp32.
        early_stopping_patience: epochs without a better validation loss before stopping (0 = never).
        max_steps: stop after this many optimizer steps (0 = no limit); for smoke runs.
        seed: seeds Python, NumPy and torch, and the batch order.
        torch_compile: compile the model with ``torch.compile`` (pays off on GPUs and long runs).
        attention_dropout: dropout on the attention probabilities; negative keeps the base model's.
            0 by default: with it, PyTorch's fused attention (SDPA) runs on CPUs; dropout there forces
            the unfused path and doubled MiniLM's step time on the 2-core CPU (3.9 s vs 1.9 s at
            32x208 tokens). Hidden-state dropout stays as the base model has it.
        eval_batch_size: batch size for the validation passes.
        log_every: optimizer steps between progress lines.
    """

    base_model: str = DEFAULT_BASE_MODEL
    epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 32
    grad_accum_steps: int = 1
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    group_by_length: bool = True
    precision: str = "auto"
    early_stopping_patience: int = 1
    max_steps: int = 0
    seed: int = 42
    torch_compile: bool = False
    attention_dropout: float = 0.0
    eval_batch_size: int = 64
    log_every: int = 20

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "grad_accum_steps", "eval_batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_bf16() -> bool:
    """True on CPUs whose instructions make bf16 matrix work fast (AVX512-BF16 or AMX)."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def pick_precision(requested: str, device_type: str) -> str:
    import torch

    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group: bool = True) -> list[list[int]]:
    """Batches of indices: shuffled, and (with ``group``) of similar lengths.

    Indices are shuffled, cut into mega-batches of 50 batches, sorted by length inside each
    mega-batch, cut into batches, and the batches shuffled again. Randomness stays (each
    mega-batch is a random sample) while a batch's texts are close in length.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group:
        mega = batch_size * 50
        order = [i for s in range(0, len(order), mega) for i in sorted(order[s : s + mega], key=lambda i: -lengths[i])]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(rows: list[dict], pad_id: int):
    """Pad a batch to its own longest sequence (``labels`` too when the rows have them)."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.as_tensor(r["input_ids"])
        mask[i, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if "label" in rows[0]:
        batch["labels"] = torch.as_tensor([r["label"] for r in rows])
    return batch


def autocast(device_type: str, precision: str):
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device_type, dtype=dtype)


def predict_logits(model, rows, batch_size: int, pad_id: int, device, precision: str):
    """Logits for ``rows`` (dicts with ``input_ids``) in their order, batched by length."""
    import torch

    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))
    out = [None] * len(rows)
    model.eval()
    with torch.inference_mode(), autocast(device.type, precision):
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            batch = collate([rows[i] for i in idx], pad_id)
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
            for i, row in zip(idx, logits.float().cpu()):
                out[i] = row
    return torch.stack(out) if out else torch.empty(0)


def evaluate_split(model, rows, settings: TrainSettings, pad_id: int, device, precision: str) -> dict:
    import torch

    logits = predict_logits(model, rows, settings.eval_batch_size, pad_id, device, precision)
    labels = torch.as_tensor([r["label"] for r in rows])
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(-1) == labels).float().mean().item()
    return {"loss": loss, "accuracy": accuracy}


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


def code_version() -> str:
    """The git commit of this code, when known (images set TEXTCLF_CODE_VERSION at build time)."""
    if os.environ.get("TEXTCLF_CODE_VERSION"):
        return os.environ["TEXTCLF_CODE_VERSION"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def checkpoint_dir_for(output_dir: str) -> Path:
    """Checkpoints live beside the model directory (same artifact prefix), not inside it:
    the model directory is exactly what the server downloads."""
    return Path(str(output_dir).rstrip("/") + ".checkpoints")


def write_reference_profile(model, tokenizer, test, label_names, out: Path, settings, device, precision) -> None:
    """``profile.json`` beside the weights: the held-out texts and this model's outputs on them,
    the reference the drift monitor compares live traffic with. (Written here rather than in
    evaluate because the model directory is this step's output; evaluate only reads it.)"""
    import torch

    from components.profile import build_reference_profile, save_profile

    rows = test.select_columns(["input_ids", "label"]).to_list()
    probabilities = torch.softmax(predict_logits(model, rows, settings.eval_batch_size, tokenizer.pad_token_id, device, precision), -1)
    profile = build_reference_profile(list(test["text"]), list(test["label"]), label_names, probabilities.numpy(), tokenizer)
    save_profile(profile, out)


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
        data_metadata: the ingested dataset's metadata (``labels``, ``fingerprint``, ``source``).
        log_metrics: called with (metrics, step) at each progress line and each validation (W&B).

    Returns:
        The content of ``training.json``.
    """
    import datasets
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    data_metadata = data_metadata or {}
    log_metrics = log_metrics or (lambda metrics, step: None)
    seed_everything(settings.seed)
    splits = datasets.load_from_disk(tokenized_dir)
    train_rows = splits["train"].select_columns(["input_ids", "label"]).to_list()
    val_rows = splits["validation"].select_columns(["input_ids", "label"]).to_list()
    tokenizer = AutoTokenizer.from_pretrained(str(Path(tokenized_dir) / "tokenizer"))
    label_names = data_metadata.get("labels") or [str(i) for i in range(max(r["label"] for r in train_rows) + 1)]

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = pick_precision(settings.precision, device.type)
    base_model = resolve_base_model(settings.base_model)  # once: a gs:// model is downloaded here
    model = AutoModelForSequenceClassification.from_pretrained(
        base_model,
        **attention_dropout_override(base_model, settings.attention_dropout),
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    ).to(device)
    step_model = torch.compile(model) if settings.torch_compile else model

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)], "weight_decay": settings.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)
    steps_per_epoch = math.ceil(math.ceil(len(train_rows) / settings.batch_size) / settings.grad_accum_steps)
    total_steps = steps_per_epoch * settings.epochs
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * settings.warmup_ratio), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    ckpt_dir = checkpoint_dir_for(output_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {"epoch": 0, "step": 0, "best_loss": math.inf, "bad_epochs": 0, "history": []}
    if (ckpt_dir / "last.pt").exists():
        saved = torch.load(ckpt_dir / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        log.info("resuming from %s: epoch %d, step %d", ckpt_dir, state["epoch"], state["step"])

    log.info(
        "training %s on %d texts (%d validation), %d labels, device %s, precision %s, %d steps",
        settings.base_model, len(train_rows), len(val_rows), len(label_names), device, precision, total_steps,
    )
    lengths = [len(r["input_ids"]) for r in train_rows]
    start = time.perf_counter()
    seen = seen_tokens = steps_this_run = 0
    train_seconds = 0.0  # the batch loops only: validation passes and checkpoints excluded
    while state["epoch"] < settings.epochs and not (settings.max_steps and state["step"] >= settings.max_steps):
        model.train()
        batches = length_grouped_batches(lengths, settings.batch_size, settings.seed + state["epoch"], settings.group_by_length)
        epoch_loss, epoch_batches = 0.0, 0
        epoch_start = time.perf_counter()
        for i, idx in enumerate(batches):
            batch = {k: v.to(device) for k, v in collate([train_rows[j] for j in idx], tokenizer.pad_token_id).items()}
            with autocast(device.type, precision):
                loss = step_model(**batch).loss / settings.grad_accum_steps
            scaler.scale(loss).backward()
            epoch_loss += loss.item() * settings.grad_accum_steps
            epoch_batches += 1
            seen += len(idx)
            seen_tokens += int(batch["attention_mask"].sum())
            if (i + 1) % settings.grad_accum_steps and i + 1 < len(batches):
                continue
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            steps_this_run += 1
            if state["step"] % settings.log_every == 0:
                elapsed = train_seconds + time.perf_counter() - epoch_start
                log_metrics(
                    {"train/loss": epoch_loss / epoch_batches, "train/lr": scheduler.get_last_lr()[0], "train/samples_per_second": seen / elapsed},
                    state["step"],
                )
                log.info(
                    "epoch %d step %d/%d loss %.4f lr %.2e | %.1f samples/s %.0f tokens/s | eta %.0fs",
                    state["epoch"] + 1, state["step"], total_steps, epoch_loss / epoch_batches,
                    scheduler.get_last_lr()[0], seen / elapsed, seen_tokens / elapsed,
                    (total_steps - state["step"]) * elapsed / steps_this_run,
                )
            if settings.max_steps and state["step"] >= settings.max_steps:
                break
        train_seconds += time.perf_counter() - epoch_start

        val = evaluate_split(model, val_rows, settings, tokenizer.pad_token_id, device, precision)
        state["epoch"] += 1
        state["history"].append({"epoch": state["epoch"], "train_loss": epoch_loss / max(epoch_batches, 1), **{f"val_{k}": v for k, v in val.items()}})
        log.info("epoch %d: validation loss %.4f accuracy %.4f", state["epoch"], val["loss"], val["accuracy"])
        log_metrics({**{f"validation/{k}": v for k, v in val.items()}, "epoch": state["epoch"]}, state["step"])
        improved = val["loss"] < state["best_loss"]
        if improved:
            state["best_loss"], state["bad_epochs"] = val["loss"], 0
            torch.save(model.state_dict(), ckpt_dir / "best.pt")
        else:
            state["bad_epochs"] += 1
        stop_early = settings.early_stopping_patience and state["bad_epochs"] >= settings.early_stopping_patience
        if stop_early or state["epoch"] >= settings.epochs or (settings.max_steps and state["step"] >= settings.max_steps):
            if stop_early:
                log.info("early stopping: no better validation loss for %d epoch(s)", state["bad_epochs"])
            break  # finished: best.pt is all that is left to load, no resume point needed
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "state": state},
            ckpt_dir / "last.pt.tmp",
        )
        os.replace(ckpt_dir / "last.pt.tmp", ckpt_dir / "last.pt")  # atomic: a kill mid-write keeps the old one

    wall = time.perf_counter() - start
    if not (ckpt_dir / "best.pt").exists():
        raise RuntimeError(f"validation loss was never finite ({state['history']}): lower learning_rate or check the data")
    model.load_state_dict(torch.load(ckpt_dir / "best.pt", map_location=device))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_reference_profile(model, tokenizer, splits["test"], label_names, out, settings, device, precision)
    summary = {
        "settings": asdict(settings),
        "precision": precision,
        "device": str(device),
        "base_model": settings.base_model,
        "labels": label_names,
        "data_fingerprint": data_metadata.get("fingerprint"),
        "data_source": data_metadata.get("source"),
        "max_length": data_metadata.get("max_length"),
        "truncation": data_metadata.get("truncation"),
        "code_version": code_version(),
        "history": state["history"],
        "best_validation_loss": state["best_loss"],
        # Of this attempt (a resumed run counts only what it trained); batch loops only.
        "train_samples_per_second": seen / train_seconds if seen else None,
        "train_seconds": train_seconds,
        "wall_seconds": wall,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=2))
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    return summary


@gpu_step
def train_op(
    dataset: dsl.Input[dsl.Dataset],
    tokenized: dsl.Input[dsl.Dataset],
    base_model: str,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    grad_accum_steps: int,
    warmup_ratio: float,
    weight_decay: float,
    precision: str,
    early_stopping_patience: int,
    max_steps: int,
    seed: int,
    torch_compile: bool,
    attention_dropout: float,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    model: dsl.Output[dsl.Model],
):
    """Fine-tune the base model as a sequence classifier.

    Args:
        dataset: Ingested dataset (its metadata gives the label names and the data fingerprint).
        tokenized: Tokenized splits from the tokenize step.
        base_model: offline:all-MiniLM-L6-v2, a hub id or a local/gs:// directory.
        epochs: Passes over the training split; early stopping may end sooner.
        learning_rate: Peak learning rate after linear warmup.
        batch_size: Examples per micro-batch.
        grad_accum_steps: Micro-batches per optimizer step.
        warmup_ratio: Share of steps with linear warmup before linear decay.
        weight_decay: AdamW weight decay.
        precision: auto, fp32, bf16 or fp16.
        early_stopping_patience: Epochs without a better validation loss before stopping; 0 never stops early.
        max_steps: Stop after this many optimizer steps; 0 means no limit.
        seed: Random seed for initialisation and batch order.
        torch_compile: Compile the model with torch.compile.
        attention_dropout: Dropout on attention probabilities (0 keeps fused attention fast on CPUs); negative keeps the base model's.
        wandb_project: W&B project (offline without an API key).
        wandb_entity: W&B team or user; empty uses the key's default.
        wandb_api_key_secret: Secret Manager version holding the W&B key (Vertex); empty uses WANDB_API_KEY.
        model: Hugging Face model directory (config with id2label, safetensors, tokenizer, training.json).
    """
    import logging
    from dataclasses import asdict

    from components import tracking
    from components.train import TrainSettings, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = TrainSettings(
        base_model=base_model, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
        grad_accum_steps=grad_accum_steps, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
        precision=precision, early_stopping_patience=early_stopping_patience, max_steps=max_steps,
        seed=seed, torch_compile=torch_compile, attention_dropout=attention_dropout,
    )
    tracking_settings = tracking.TrackingSettings(project=wandb_project, entity=wandb_entity, api_key_secret=wandb_api_key_secret)
    config = {**asdict(settings), "data_fingerprint": dataset.metadata.get("fingerprint"), "data_source": dataset.metadata.get("source")}
    with tracking.start(tracking_settings, job_type="train", config=config) as run:
        summary = train(tokenized.path, model.path, settings, {**dataset.metadata, **tokenized.metadata}, log_metrics=run.log)
    model.metadata.update({k: summary[k] for k in ("labels", "base_model", "data_fingerprint", "precision", "code_version")})
