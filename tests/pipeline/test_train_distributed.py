"""Data-parallel training for real: torchrun, two processes, gloo, the tiny random BERT on CPU.

Nothing is faked: ``python -m torch.distributed.run --standalone --nproc_per_node 2`` starts two
ranks of the real command line (``python -m textclf.train``, observed by tests/pipeline/ddp_worker.py),
which join a gloo process group and train inside DistributedDataParallel. W&B runs offline.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from textclf.train import TrainSettings, train
from textclf.train.checkpoint import checkpoint_dir_for
from textclf.train.launch import settings_arguments

ROOT = Path(__file__).resolve().parents[2]
PER_RANK_BATCH = 8
# Loss tolerance against one process with the same global batch, per logged step. The two runs
# compute the same sums in a different order (two half batches padded to their own widths, and
# a gradient all-reduce instead of one batch): float32 rounding, compounded over 12 AdamW steps.
# Measured: at most 6e-8 on the training loss, 0 on the validation loss. For scale, halving the
# learning rate (what losing one of the two ranks' gradients amounts to) moves the curve by 1.5e-3.
LOSS_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory):
    """The tiny BERT without hidden-state dropout: the ranks' dropout masks cannot match those of a
    single process, so the comparison would measure dropout noise instead of the arithmetic."""
    from tests.conftest import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("tiny-no-dropout"))
    config_path = Path(folder) / "config.json"
    config = json.loads(config_path.read_text())
    config["hidden_dropout_prob"] = 0.0
    config_path.write_text(json.dumps(config))
    return folder


def settings(model_dir: str, batch_size: int) -> TrainSettings:
    return TrainSettings(
        base_model=model_dir,
        epochs=1,
        batch_size=batch_size,
        learning_rate=1e-3,
        seed=0,
        precision="fp32",
        log_every=1,
        dataloader_workers=1,
    )


@pytest.fixture(scope="module")
def two_ranks(tokenized_dir, no_dropout_model, tmp_path_factory):
    """Train with two processes; returns (what each rank saw, output folder)."""
    out = tmp_path_factory.mktemp("ddp")
    env = {
        **os.environ,
        "DDP_TEST_OUT": str(out),
        "PYTHONPATH": str(ROOT),
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(out),
        "WANDB_SILENT": "true",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(ROOT / "tests/pipeline/ddp_worker.py"),
        "--tokenized",
        tokenized_dir,
        "--output",
        str(out / "model"),
        "--metadata",
        json.dumps({"labels": ["negative", "positive"], "fingerprint": "f"}),
        *settings_arguments(settings(no_dropout_model, PER_RANK_BATCH)),
    ]
    done = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, out


def test_both_ranks_end_with_identical_weights(two_ranks):
    _, out = two_ranks
    rank0, rank1 = (torch.load(out / f"weights-rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)


def test_only_rank_0_writes_the_model_checkpoints_and_tracking(two_ranks):
    (rank0, rank1), out = two_ranks
    assert rank1 == {"writes": [], "metrics": [], "tracking_runs": 0}
    assert rank0["writes"] == ["best.pt", "model_dir"] and rank0["tracking_runs"] == 1
    assert {p.name for p in (out / "model").iterdir()} >= {
        "model.safetensors",
        "config.json",
        "training.json",
        "profile.json",
    }
    assert not checkpoint_dir_for(out / "model").exists()
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    training = json.loads((out / "model" / "training.json").read_text())
    assert training["processes"] == 2 and training["settings"]["batch_size"] == PER_RANK_BATCH


def test_loss_curve_matches_one_process_with_the_same_global_batch(
    two_ranks, tokenized_dir, no_dropout_model, tmp_path
):
    (rank0, _), _ = two_ranks
    logged = []
    summary = train(
        tokenized_dir,
        str(tmp_path / "model"),
        settings(no_dropout_model, 2 * PER_RANK_BATCH),
        {"labels": ["negative", "positive"]},
        log_metrics=lambda metrics, step: logged.append([step, metrics]),
    )

    def curve(entries, key):
        return {step: metrics[key] for step, metrics in entries if key in metrics}

    one, two = curve(logged, "train/loss"), curve(rank0["metrics"], "train/loss")
    assert list(two) == list(one) == list(range(1, 13)), (
        "192 texts in global batches of 16: 12 steps, one log line each"
    )
    assert max(abs(one[s] - two[s]) for s in one) < LOSS_TOLERANCE, (one, two)
    assert abs(curve(logged, "validation/loss")[12] - curve(rank0["metrics"], "validation/loss")[12]) < LOSS_TOLERANCE
    assert summary["processes"] == 1
