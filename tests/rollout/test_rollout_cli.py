"""``python -m serving.rollout`` end to end against the fake Kubernetes API server.

The fake (tests/rollout/fake_kube.py) stands in for a cluster that cannot run here; the W&B
server, which cannot run here either, is faked at its public API (tests/cloud: FakeWandb).
"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from serving.rollout.__main__ import main
from tests.cloud.test_cloud_tracking import FakeWandb
from tests.rollout.conftest import NAMESPACE, isvc_manifest, kserve_status, storage_uri_of
from textclf import tracking


def test_apply_status_promote(kube, kubeconfig, tmp_path, capsys):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump(isvc_manifest()))
    second.write_text(yaml.safe_dump(isvc_manifest("gs://bucket/models/run-2", canary=10)))
    cli = ["--kubeconfig", str(kubeconfig)]

    assert main([*cli, "apply", str(first)]) == 0
    assert "W&B offline: no production alias set" in capsys.readouterr().out  # the first model serves all
    kube.set_status(NAMESPACE, "textclf", kserve_status("textclf-predictor-00001"))
    assert main([*cli, "apply", str(second)]) == 0
    out = capsys.readouterr().out
    assert "InferenceService models/textclf applied (generation 2)" in out
    assert "W&B" not in out  # a canary: production stays where it is
    kube.set_status(
        NAMESPACE, "textclf", kserve_status("textclf-predictor-00002", "textclf-predictor-00001", 10, generation=2)
    )

    assert main([*cli, "status", "textclf", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["canary_percent"] == 10 and status["ready"] is True

    assert main([*cli, "promote", "textclf"]) == 0
    assert "canaryTrafficPercent:  none" in capsys.readouterr().out
    live = kube.get(NAMESPACE, "textclf")
    assert "canaryTrafficPercent" not in live["spec"]["predictor"]
    assert storage_uri_of(live) == "gs://bucket/models/run-2"


def test_errors_print_their_name_and_exit_1(kube, kubeconfig, tmp_path, capsys):
    cli = ["--kubeconfig", str(kubeconfig)]
    assert main([*cli, "rollback", "textclf"]) == 1
    assert "error: InferenceServiceNotFoundError:" in capsys.readouterr().err

    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump_all([isvc_manifest(), isvc_manifest()]))
    assert main([*cli, "apply", str(two)]) == 1
    assert "exactly one document, found 2" in capsys.readouterr().err
    assert kube.writes() == []


def test_cli_imports_neither_torch_nor_kserve():
    code = (
        "import sys, serving.rollout.__main__, serving.rollout.analysis; "
        "print(sorted(m for m in ('torch', 'kserve', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_promote_moves_the_w_and_b_production_alias_to_the_promoted_model(
    kube, kubeconfig, tmp_path, capsys, monkeypatch
):
    import wandb

    fake = FakeWandb()
    monkeypatch.setattr(wandb, "Api", fake.Api)
    collection = "team/textclf/textclf-model"
    old = fake.log(collection, tracking.model_metadata({"f1": 0.8}, "gs://bucket/models/run-1"), ["production"])
    new = fake.log(collection, tracking.model_metadata({"f1": 0.9}, "gs://bucket/models/run-2"), ["approved"])
    cli = ["--kubeconfig", str(kubeconfig)]
    for uri, canary in (("gs://bucket/models/run-1", None), ("gs://bucket/models/run-2", 10)):
        path = tmp_path / "isvc.yaml"
        path.write_text(yaml.safe_dump(isvc_manifest(uri, canary=canary)))
        assert main([*cli, "apply", str(path)]) == 0
    capsys.readouterr()

    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert main([*cli, "promote", "textclf"]) == 0

    assert f"W&B: {collection}:v1 (gs://bucket/models/run-2) is now production" in capsys.readouterr().out
    assert new.aliases == ["approved", "production"] and old.aliases == []


def test_promote_stands_when_w_and_b_fails(kube, kubeconfig, tmp_path, capsys, monkeypatch):
    import wandb

    def unreachable(**kwargs):
        raise ConnectionError("api.wandb.ai unreachable")

    monkeypatch.setattr(wandb, "Api", unreachable)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    kube.seed(isvc_manifest("gs://bucket/models/run-2", canary=10))

    assert main(["--kubeconfig", str(kubeconfig), "promote", "textclf"]) == 0

    out = capsys.readouterr().out
    assert (
        "W&B: could not set the production alias (ConnectionError: api.wandb.ai unreachable); the promote stands" in out
    )
    assert "canaryTrafficPercent" not in kube.get(NAMESPACE, "textclf")["spec"]["predictor"]


def test_standard_mode_apply_status_rollback_promote(kube, kubeconfig, tmp_path, capsys):
    from textclf.inferenceservice import DeploySettings, build_inference_service, predictor_name

    cli = ["--kubeconfig", str(kubeconfig)]
    paths = []
    for model, live in (("gs://bucket/models/run-1", ""), ("gs://bucket/models/run-2", "gs://bucket/models/run-1")):
        paths.append(tmp_path / f"{len(paths)}.yaml")
        paths[-1].write_text(
            yaml.safe_dump(
                build_inference_service(
                    model, DeploySettings(namespace=NAMESPACE, deployment_mode="standard", live_model_uri=live)
                )
            )
        )
    canary_service = f"textclf-{predictor_name('gs://bucket/models/run-2')}-predictor"

    assert main([*cli, "apply", str(paths[0])]) == 0
    assert main([*cli, "apply", "--canary-percent", "30", str(paths[1])]) == 0
    assert main([*cli, "status", "textclf"]) == 0
    out = capsys.readouterr().out
    assert f"canary:                {canary_service} 30% (not ready), model gs://bucket/models/run-2" in out

    assert main([*cli, "rollback", "textclf"]) == 0
    assert "canary:                none" in capsys.readouterr().out
    assert main([*cli, "apply", str(paths[1])]) == 0  # after a rollback the model is new again
    capsys.readouterr()
    assert main([*cli, "status", "--json", "textclf"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["deployment_mode"], status["canary_percent"]) == ("standard", 10)

    assert main([*cli, "promote", "textclf"]) == 0
    out = capsys.readouterr().out
    assert "W&B offline: no production alias set" in out
    assert f"stable predictor:      {canary_service} 100%, model gs://bucket/models/run-2" in out
