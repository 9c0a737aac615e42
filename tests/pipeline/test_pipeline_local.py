"""The whole pipeline through kfp's local runner (subprocesses, no cluster), with a tiny model.

kfp's local runner silently skips some conditions, so the gate is proven both ways: a run that
passes writes the manifest, a run that cannot pass never runs deploy.
"""

import json

import pytest
import yaml

from pipelines.run import find_outputs, run_local

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom:RuntimeWarning")


def tiny_run(tmp_path, tiny_model_dir, **params):
    arguments = {
        "source": "sample:160", "base_model": tiny_model_dir, "max_length": 48, "epochs": 1, "batch_size": 16,
        "min_accuracy": 0.0, "min_mft_pass_rate": 0.0, "min_inv_pass_rate": 0.0, "min_dir_pass_rate": 0.0,
        **params,
    }
    return run_local(arguments, runs_dir=str(tmp_path))


@pytest.fixture(scope="module")
def passing_run(tmp_path_factory, tiny_model_dir):
    """A run that passes the gate, tracked by W&B offline (no API key, no WANDB_MODE) into WANDB_DIR."""
    wandb_dir = tmp_path_factory.mktemp("wb")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("WANDB_MODE", raising=False)
        env.delenv("WANDB_API_KEY", raising=False)
        env.setenv("WANDB_DIR", str(wandb_dir))
        run = tiny_run(tmp_path_factory.mktemp("runs"), tiny_model_dir, live_model_uri=tiny_model_dir)
    run.wandb_dir = wandb_dir
    return run


def test_a_passing_run_writes_every_artifact_and_the_manifest(passing_run, tiny_model_dir):
    paths = passing_run.paths
    assert set(paths) == {"data_card", "model", "metrics", "report", "gate_decision", "manifest"}
    manifest = yaml.safe_load(paths["manifest"].read_text())
    predictor = manifest["spec"]["predictor"]
    assert {"name": "STORAGE_URI", "value": str(paths["model"])} in predictor["containers"][0]["env"]
    assert predictor["canaryTrafficPercent"] == 10, "a live model was named, so the new one is a canary"
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["champion"]["model"] == tiny_model_dir
    assert "PASS" in paths["gate_decision"].read_text()
    assert (paths["model"] / "profile.json").exists() and (paths["model"] / "config.json").exists()
    assert "manifest:" in passing_run.summary()


def test_a_gate_that_cannot_pass_blocks_deploy(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    run = tiny_run(tmp_path / "runs", tiny_model_dir, min_accuracy=1.01)
    assert not (tmp_path / "wb").exists(), "WANDB_MODE=disabled must write nothing"
    assert "deploy-op" not in {p.name for p in run.run_dir.glob("*/*")}, "deploy ran although the gate failed"
    assert "manifest" not in run.paths
    assert "FAIL" in run.paths["gate_decision"].read_text()
    assert "min accuracy" in run.paths["gate_decision"].read_text()
    assert "the gate did not pass" in run.summary()


def test_find_outputs_of_an_empty_run(tmp_path):
    assert find_outputs(tmp_path) == {}


def test_wandb_offline_leaves_a_run_directory_per_tracked_step(passing_run):
    runs = sorted((passing_run.wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 3, runs  # train, evaluate, promote (deploy)
