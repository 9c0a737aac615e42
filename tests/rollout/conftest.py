"""Fixtures for the rollout tests: a fake API server, a client bound to it, manifests."""

from __future__ import annotations

import copy

import pytest

from tests.rollout.fake_kube import FakeKubeAPI
from textclf.platform.kube import InferenceServiceAPI

NAMESPACE = "models"


def isvc_manifest(storage_uri: str = "gs://bucket/models/run-1", canary: int | None = None) -> dict:
    """An InferenceService shaped like the one the pipeline's deploy step writes."""
    predictor = {
        "serviceAccountName": "textclf-serving",
        "minReplicas": 1,
        "maxReplicas": 3,
        "containers": [
            {
                "name": "kserve-container",
                "image": "us-docker.pkg.dev/p/textclf/textclf-server:abc123",
                "args": ["--model_name", "textclf", "--model_dir", "/mnt/models"],
                "env": [{"name": "STORAGE_URI", "value": storage_uri}],
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
            }
        ],
    }
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return copy.deepcopy(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                "name": "textclf",
                "namespace": NAMESPACE,
                "labels": {"app": "textclf"},
                "annotations": {"serving.kserve.io/deploymentMode": "Serverless"},
            },
            "spec": {"predictor": predictor},
        }
    )


def storage_uri_of(obj: dict) -> str:
    env = obj["spec"]["predictor"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "STORAGE_URI")


@pytest.fixture(autouse=True)
def wandb_offline(monkeypatch):
    """No W&B key from the environment reaches a rollout test: promote's alias step stays offline."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.fixture
def kube():
    with FakeKubeAPI() as server:
        yield server


@pytest.fixture
def kubeconfig(kube, tmp_path):
    return kube.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def api(kubeconfig) -> InferenceServiceAPI:
    return InferenceServiceAPI.connect(kubeconfig=str(kubeconfig), timeout_s=5)


def kserve_status(
    latest: str,
    previous: str | None = None,
    percent: int | None = None,
    generation: int = 1,
    ready: bool = True,
    urls: dict[str, str] | None = None,
) -> dict:
    """Status as KServe's controller writes it: one revision at 100%, or a canary split."""
    urls = urls or {}
    if previous is None or percent is None:
        traffic = [{"revisionName": latest, "percent": 100, "latestRevision": True}]
    else:
        traffic = [
            {
                "revisionName": previous,
                "percent": 100 - percent,
                "latestRevision": False,
                "tag": "prev",
                **({"url": urls["prev"]} if "prev" in urls else {}),
            },
            {
                "revisionName": latest,
                "percent": percent,
                "latestRevision": True,
                "tag": "latest",
                **({"url": urls["latest"]} if "latest" in urls else {}),
            },
        ]
    predictor = {
        "latestCreatedRevision": latest,
        "latestReadyRevision": latest,
        "latestRolledoutRevision": previous if percent else latest,
        "traffic": traffic,
    }
    if previous:
        predictor["previousRolledoutRevision"] = previous
    return {
        "observedGeneration": generation,
        "url": "http://textclf.models.example.com",
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                **({} if ready else {"reason": "RevisionMissing", "message": "revision not ready"}),
            }
        ],
        "components": {"predictor": predictor},
    }


def kserve_standard_status(
    canaries: dict[str, tuple[int, bool]] | None = None, generation: int = 1, ready: bool = True
) -> dict:
    """Status as KServe's controller writes it in Standard mode: ``canaries`` is name -> (percent, ready).

    v0.20.0 (components/predictor.go reconcileCanaryDeployments): ``canaryStatuses`` per canary and
    the condition ``CanaryPredictorReady``, which the overall ``Ready`` does not depend on.
    """
    canaries = canaries or {}
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False"},
        {"type": "PredictorReady", "status": "True" if ready else "False"},
    ]
    if canaries:
        all_ready = all(is_ready for _, is_ready in canaries.values())
        conditions.append(
            {
                "type": "CanaryPredictorReady",
                "status": "True" if all_ready else "False",
                "reason": "AllCanariesReady" if all_ready else "CanariesNotReady",
            }
        )
    return {
        "observedGeneration": generation,
        "deploymentMode": "Standard",
        "url": "http://textclf.models.example.com",
        "conditions": conditions,
        "components": {"predictor": {"url": "http://textclf-predictor.models.example.com"}},
        **(
            {
                "canaryStatuses": [
                    {"name": name, "trafficPercent": percent, "ready": is_ready}
                    for name, (percent, is_ready) in canaries.items()
                ]
            }
            if canaries
            else {}
        ),
    }
