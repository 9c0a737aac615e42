"""deploy_op with apply=True sends the InferenceService to the cluster.

The fake Kubernetes API server (tests/rollout/fake_kube.py, on loopback) stands in for a cluster
that cannot run here; the request goes through the real kubernetes client and our rollout code.
"""

import json
from dataclasses import asdict

import pytest
from kfp import dsl

from components.deploy import deploy_op
from tests.rollout.fake_kube import FakeKubeAPI
from textclf.inferenceservice import DeploySettings
from textclf.tracking import TrackingSettings


def run_deploy(
    tmp_path, apply: bool, mode: str = "serverless", model: str = "model", live: str = "", scored: str = "onnx-int8"
):
    """deploy_op on an optimized model whose serving.json chose onnx-int8, evaluate having scored ``scored``."""
    model_dir = tmp_path / model
    model_dir.mkdir(exist_ok=True)
    (model_dir / "config.json").write_text("{}")
    (model_dir / "serving.json").write_text(json.dumps({"backend": "onnx-int8"}))
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir(exist_ok=True)
    (evaluation / "metrics.json").write_text(
        json.dumps(
            {
                "accuracy": 0.9,
                "f1": 0.9,
                "precision": 0.9,
                "recall": 0.9,
                "roc_auc": 0.95,
                "loss": 0.3,
                "serving": {"backend": scored},
            }
        )
    )
    manifest = dsl.Artifact(uri=str(tmp_path / "manifest"))
    settings = asdict(
        DeploySettings(
            max_replicas=2,
            serving_cpu="1",
            serving_memory="2Gi",
            apply=apply,
            deployment_mode=mode,
            live_model_uri=live,
        )
    )
    tracking = {name: value for name, value in asdict(TrackingSettings()).items() if name.startswith("wandb_")}
    deploy_op.python_func(
        model=dsl.Model(uri=str(model_dir)),
        evaluation=dsl.Artifact(uri=str(evaluation)),
        manifest=manifest,
        **settings,
        **tracking,
    )
    return manifest


@pytest.mark.parametrize("mode", ["serverless", "standard"])
def test_apply_creates_the_inference_service_then_the_next_model_is_its_canary(tmp_path, monkeypatch, capsys, mode):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with FakeKubeAPI() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        manifest = run_deploy(tmp_path, apply=True, mode=mode)
        first = kube.get("textclf", "textclf")
        assert "W&B disabled: no production alias set" in capsys.readouterr().out  # it serves all traffic
        run_deploy(tmp_path, apply=True, mode=mode, model="model-2", live=str(tmp_path / "model"))
        second = kube.get("textclf", "textclf")
    assert {"name": "STORAGE_URI", "value": str(tmp_path / "model")} in first["spec"]["predictor"]["containers"][0][
        "env"
    ]
    assert first["spec"]["predictor"]["containers"][0]["args"][-2:] == ["--backend", "onnx-int8"]
    assert first["metadata"]["annotations"]["textclf.dev/serving-backend"] == "onnx-int8"
    assert manifest.metadata["applied"] is True and manifest.metadata["deployment_mode"] == mode
    assert manifest.metadata["serving_backend"] == "onnx-int8"
    assert "W&B" not in capsys.readouterr().out  # a canary: production stays
    if mode == "standard":
        assert second["spec"]["predictor"] == first["spec"]["predictor"]
        [canary] = second["spec"]["canary"]
        assert canary["trafficPercent"] == 10
        assert canary["predictor"]["containers"][0]["env"] == [
            {"name": "STORAGE_URI", "value": str(tmp_path / "model-2")}
        ]
    else:
        assert second["spec"]["predictor"]["canaryTrafficPercent"] == 10
        assert second["spec"]["predictor"]["containers"][0]["env"] == [
            {"name": "STORAGE_URI", "value": str(tmp_path / "model-2")}
        ]


def test_deploy_refuses_to_pin_another_backend_than_evaluate_scored(tmp_path, monkeypatch):
    with FakeKubeAPI() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        with pytest.raises(ValueError, match="resolves to 'onnx-int8' .* but evaluate scored 'torch'"):
            run_deploy(tmp_path, apply=True, scored="torch")
        assert kube.objects == {} and not (tmp_path / "manifest").exists()


def test_without_apply_nothing_is_sent(tmp_path, monkeypatch):
    with FakeKubeAPI() as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        run_deploy(tmp_path, apply=False)
        assert kube.objects == {} and not kube.writes()
    assert (tmp_path / "manifest").read_text().startswith("apiVersion: serving.kserve.io/v1beta1")
