"""The Model artifact directory: weights, tokenizer, ``profile.json``, ``probe_texts.jsonl`` and ``training.json``.

This directory is exactly what the server loads and what ``storageUri`` points at.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

from textclf.encoding import TRAINING_FILE


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


PROFILE_BATCH_ROWS = 1024  # texts scored and profiled at a time
PROFILE_SPLIT = "validation"  # see write_reference_profile


def write_reference_profile(run, tokenizer, tokenized, label_names, out: Path, batch_size: int) -> None:
    """``profile.json`` beside the weights: held-out texts and this model's outputs on them, the
    reference the drift monitor compares live traffic with. (Written here rather than in evaluate
    because the model directory is this step's output; evaluate only reads it.)

    The validation split, not test: held out from the weights all the same (it only picked the best
    epoch), a fine sample of what the model meets, and far smaller, so the pipeline scores the test
    split once, in evaluate (the accuracy of record). The best epoch's validation pass already
    scored it with these weights (``run.best_validation``): those probabilities are used; a run
    resumed after its best epoch scores it again through the inference engine. ``tokenized`` is the
    tokenize step's folder (read file by file, so memory stays flat however large the split) or a
    ``DatasetDict``'s split; it is profiled ``PROFILE_BATCH_ROWS`` texts at a time.
    """
    from textclf.data.tokenized import iter_batches
    from textclf.profile import ReferenceProfileBuilder, save_profile
    from textclf.train.model import scoring_engine

    engine = scoring_engine(run.model, run.precision, run.pad_id, batch_size)
    builder = ReferenceProfileBuilder(label_names, tokenizer)
    done = 0
    for batch in iter_batches(tokenized, ["input_ids", "text", "label"], PROFILE_BATCH_ROWS, split=PROFILE_SPLIT):
        if run.best_validation is not None:
            probabilities = run.best_validation[done : done + batch.num_rows]
        else:
            probabilities = engine.probabilities_of_ids(batch.column("input_ids").to_pylist())
        builder.add(batch.column("text").to_pylist(), batch.column("label").to_pylist(), probabilities)
        done += batch.num_rows
    if run.best_validation is not None and done != len(run.best_validation):
        raise RuntimeError(
            f"the validation split has {done} rows, its validation pass scored {len(run.best_validation)}"
        )
    save_profile(builder.build(), out)


def write_model_probe_texts(tokenized, label_names: list[str], out: Path, seed: int) -> None:
    """``probe_texts.jsonl``: a seeded sample of the validation split's texts with their labels
    (``textclf.probe``), the texts every later check of this model probes it with."""
    from textclf.data.tokenized import iter_batches
    from textclf.probe import sample_probe_texts, write_probe_texts

    def rows():
        for batch in iter_batches(tokenized, ["text", "label"], PROFILE_BATCH_ROWS, split=PROFILE_SPLIT):
            for text, label in zip(batch.column("text").to_pylist(), batch.column("label").to_pylist()):
                yield text, label_names[label]

    write_probe_texts(out, sample_probe_texts(rows(), seed))


def save_model_dir(
    run, tokenizer, tokenized, label_names: list[str], output_dir: str, settings, data_metadata: dict, wall: float
) -> dict:
    """Write the Model directory from ``run``'s (best) weights; returns ``training.json``'s content.

    Rank 0's job alone (the training loop calls it there); ``run.seen`` counts the texts of all ranks."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    run.model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    write_reference_profile(run, tokenizer, tokenized, label_names, out, settings.eval_batch_size)
    write_model_probe_texts(tokenized, label_names, out, settings.seed)
    summary = {
        "settings": asdict(settings),
        "precision": run.precision,
        "device": str(run.device),
        "base_model": settings.base_model,
        "labels": label_names,
        "data_fingerprint": data_metadata.get("fingerprint"),
        "data_source": data_metadata.get("source"),
        # The encoding the model was trained with: the server and evaluation use the same (TextEncoder.for_model).
        "max_length": data_metadata.get("max_length"),
        "truncation": data_metadata.get("truncation"),
        "code_version": code_version(),
        "tuning": data_metadata.get("tuning"),  # the tune step's study when it chose settings (textclf.tune), else None
        "history": run.state["history"],
        "best_validation_loss": run.state["best_loss"],
        "processes": run.ranks.world_size,  # data-parallel training processes (ranks)
        # Of this attempt (a resumed run counts only what it trained); batch loops only.
        "train_samples_per_second": run.seen / run.train_seconds if run.seen else None,
        "train_tokens_per_second": run.seen_tokens / run.train_seconds if run.seen else None,
        "train_seconds": run.train_seconds,
        "wall_seconds": wall,
    }
    (out / TRAINING_FILE).write_text(json.dumps(summary, indent=2))
    return summary
