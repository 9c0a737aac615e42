"""The whole pipeline through kfp's local runner (subprocesses, no cluster), with a tiny model.

kfp's local runner silently skips some conditions, so the gate is proven both ways: a run that
passes writes the manifest, a run that cannot pass never runs deploy.
"""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipelines.__main__ import main
from pipelines.run import EXIT_GATE_BLOCKED, exception_line, failed_step, find_outputs, latest_model, run_local

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom:RuntimeWarning")


def tiny_run(tmp_path, tiny_model_dir, **params):
    arguments = {
        "source": "sample:160",
        "base_model": tiny_model_dir,
        "max_length": 48,
        "epochs": 1,
        "batch_size": 16,
        "min_accuracy": 0.0,
        "min_mft_pass_rate": 0.0,
        "min_inv_pass_rate": 0.0,
        "min_dir_pass_rate": 0.0,
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
    assert set(paths) == {"data_card", "model", "metrics", "predictions", "report", "gate_decision", "manifest"}
    manifest = yaml.safe_load(paths["manifest"].read_text())
    predictor = manifest["spec"]["predictor"]
    assert {"name": "STORAGE_URI", "value": str(paths["model"])} in predictor["containers"][0]["env"]
    assert predictor["canaryTrafficPercent"] == 10, "a live model was named, so the new one is a canary"
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["champion"]["model"] == tiny_model_dir
    # The manifest pins the backend evaluate scored, the optimize step's choice, with its measured agreement.
    serving = json.loads((paths["model"] / "serving.json").read_text())
    args = predictor["containers"][0]["args"]
    assert args[args.index("--backend") + 1] == metrics["serving"]["backend"] == serving["backend"]
    assert manifest["metadata"]["annotations"]["textclf.dev/serving-backend"] == serving["backend"]
    assert metrics["serving"]["validation"] == serving["backends"][serving["backend"]]
    assert metrics["serving"]["validation"]["flip_rate"] <= 0.005
    assert metrics["champion"]["serving"]["backend"] == "torch"  # the live model was never optimized
    assert "PASS" in paths["gate_decision"].read_text()
    assert (paths["model"] / "profile.json").exists() and (paths["model"] / "config.json").exists()
    assert "manifest:" in passing_run.summary()


def test_the_model_served_as_the_manifest_says_answers_the_test_split_as_evaluate_predicted(passing_run, tmp_path):
    """Issue 22's done-when: a real kserve ModelServer on 127.0.0.1 started with the deploy step's
    predictor args (``/mnt/models`` being where KServe's storage initializer puts the STORAGE_URI,
    here the local artifact itself), sent the run's whole test split: every label is evaluate's
    per-text prediction and every probability within 1e-4 of it."""
    import pandas as pd

    from tests.serving.conftest import serve_args
    from textclf.data.tokenized import iter_batches

    container = yaml.safe_load(passing_run.paths["manifest"].read_text())["spec"]["predictor"]["containers"][0]
    storage = next(env["value"] for env in container["env"] if env["name"] == "STORAGE_URI")
    args = [storage if arg == "/mnt/models" else arg for arg in container["args"]]
    name = args[args.index("--model_name") + 1]
    [tokenized] = passing_run.run_dir.glob("*/tokenize-op/tokenized")
    texts = [
        text
        for batch in iter_batches(str(tokenized), ["text"], 1000, split="test")
        for text in batch.column("text").to_pylist()
    ]
    expected = pd.read_parquet(passing_run.paths["predictions"])
    labels = json.loads((passing_run.paths["model"] / "config.json").read_text())["id2label"]
    assert expected["row"].tolist() == list(range(len(texts)))
    with serve_args([*args, "--enable_grpc", "false"], tmp_path, name) as server:
        answers = []
        for start in range(0, len(texts), 16):
            body = json.dumps({"instances": texts[start : start + 16]}).encode()
            request = urllib.request.Request(
                f"{server.url}/v1/models/{name}:predict", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                answers += json.loads(response.read())["predictions"]
        torch_loaded = "libtorch_cpu" in Path(f"/proc/{server.process.pid}/maps").read_text()
    assert [answer["label"] for answer in answers] == [labels[str(i)] for i in expected["predicted"]]
    served = np.array([[answer["probabilities"][labels[str(i)]] for i in range(len(labels))] for answer in answers])
    assert np.abs(served - np.stack(expected["probabilities"].to_numpy())).max() <= 1e-4
    backend = args[args.index("--backend") + 1]
    assert torch_loaded == backend.startswith("torch"), "an ONNX predictor must not load torch"


def test_a_gate_that_cannot_pass_blocks_deploy_and_fails_the_command(passing_run, tiny_model_dir, monkeypatch, capsys):
    """Through the CLI, into the passing run's runs directory: exit status 3 with one last line,
    and latest-model then skips the blocked (newer) model unless told --any."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    wandb_dir = passing_run.run_dir.parent.parent / "wb-disabled"
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    runs_dir = passing_run.run_dir.parent
    params = {
        "source": "sample:160",
        "base_model": tiny_model_dir,
        "max_length": 48,
        "epochs": 1,
        "batch_size": 16,
        "min_accuracy": 1.01,
        "min_mft_pass_rate": 0.0,
        "min_inv_pass_rate": 0.0,
        "min_dir_pass_rate": 0.0,
    }
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--runs-dir", str(runs_dir), *(arg for k, v in params.items() for arg in ("--param", f"{k}={v}"))])
    assert exit_info.value.code == EXIT_GATE_BLOCKED
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the gate blocked the model (fail: min accuracy)") and "--allow-blocked" in err[-1]

    blocked_dir = max(p for p in runs_dir.iterdir() if p.is_dir())
    assert blocked_dir != passing_run.run_dir
    paths = find_outputs(blocked_dir)
    assert not wandb_dir.exists(), "WANDB_MODE=disabled must write nothing"
    assert "deploy-op" not in {p.name for p in blocked_dir.glob("*/*")}, "deploy ran although the gate failed"
    assert "manifest" not in paths
    assert "FAIL" in paths["gate_decision"].read_text() and "min accuracy" in paths["gate_decision"].read_text()

    assert latest_model(str(runs_dir)).path == passing_run.paths["model"].resolve()
    assert latest_model(str(runs_dir), any_gate=True).path == paths["model"].resolve()
    main(["latest-model", "--runs-dir", str(runs_dir)])
    out, err = capsys.readouterr()
    assert out == f"{passing_run.paths['model'].resolve()}\n"  # all that $(python -m pipelines latest-model) gets
    assert (
        err.strip()
        == f"latest-model: run {passing_run.run_dir.name} (gate pass, 1 newer run(s) skipped: their gate did not pass)"
    )


def test_a_failed_step_ends_with_its_own_error_line(tmp_path):
    """The real CLI in a subprocess: a source with one class fails ingest; the last line names
    the step and the step's exception, not kfp's "Inner task failed"."""
    source = tmp_path / "one-class.csv"
    source.write_text("text,label\ngood film,pos\nfine film,pos\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "--runs-dir", str(tmp_path / "runs"), "--param", f"source={source}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step ingest failed: SingleClassError: the dataset needs at least two classes"), last


def test_exception_line_reads_the_last_traceback_of_a_step_log():
    log = [
        "Executing task 'ingest-op'",
        "    Traceback (most recent call last):",
        '      File "x.py", line 1, in <module>',
        "        raise KeyError('a')",
        "    KeyError: 'a'",
        "    ",
        "    During handling of the above exception, another exception occurred:",
        "    Traceback (most recent call last):",
        '      File "/work/textclf/ingest.py", line 136, in read_source',
        '        raise SourceError(f"source not found: {source} ({error})") from error',
        "        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "    textclf.ingest.SourceError: source not found: gs://b/x.csv (404: No such object: b/x.csv)",
        "",
    ]
    assert exception_line(log) == "SourceError: source not found: gs://b/x.csv (404: No such object: b/x.csv)"
    assert exception_line(["    Killed"]) is None
    assert (
        exception_line(["Traceback (most recent call last):", '  File "x", line 1', "KeyboardInterrupt"])
        == "KeyboardInterrupt"
    )


def test_failed_step_is_read_from_kfp_failure_messages():
    colored = (
        "Pipeline \x1b[95m'textclf-train'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m. "
        "Inner task failed: \x1b[96m'ingest-op'\x1b[0m."
    )
    assert failed_step(RuntimeError(colored)) == "ingest"
    assert failed_step(RuntimeError("Inner task failed: 'deploy-op' inside 'condition-1'.")) == "deploy"
    assert failed_step(RuntimeError("Task 'train-op' finished with status FAILURE")) == "train"
    assert failed_step(RuntimeError("something else")) is None


def test_find_outputs_of_an_empty_run(tmp_path):
    assert find_outputs(tmp_path) == {}


def test_wandb_offline_leaves_a_run_directory_per_tracked_step(passing_run):
    runs = sorted((passing_run.wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 3, runs  # train, evaluate, promote (deploy)
