"""Fixtures for the rollout tests: a fake API server, a client bound to it, manifests."""

from __future__ import annotations

import copy

import pytest

from textclf.rollout.kube import InferenceServiceAPI
from tests.rollout.fake_kube import FakeKubeAPI

NAMESPACE = "models"


def isvc_manifest(storage_uri: str = "gs://bucket/models/run-1", canary: int | None = None) -> dict:
    """An InferenceService shaped like the one the pipeline's deploy step writes."""
    predictor = {
        "serviceAccountName": "textclf-serving",
        "minReplicas": 1,
        "maxReplicas": 3,
        "containers": [{
            "name": "kserve-container",
            "image": "us-docker.pkg.dev/p/textclf/textclf-server:abc123",
            "args": ["--model_name", "textclf", "--model_dir", "/mnt/models"],
            "env": [{"name": "STORAGE_URI", "value": storage_uri}],
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
        }],
    }
    if canary is not None:
        predictor["canaryTrafficPercent"] = canary
    return copy.deepcopy({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "textclf", "namespace": NAMESPACE, "labels": {"app": "textclf"},
                     "annotations": {"serving.kserve.io/deploymentMode": "Serverless"}},
        "spec": {"predictor": predictor},
    })


def storage_uri_of(obj: dict) -> str:
    env = obj["spec"]["predictor"]["containers"][0]["env"]
    return next(e["value"] for e in env if e["name"] == "STORAGE_URI")


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
    latest: str, previous: str | None = None, percent: int | None = None, generation: int = 1,
    ready: bool = True, urls: dict[str, str] | None = None,
) -> dict:
    """Status as KServe's controller writes it: one revision at 100%, or a canary split."""
    urls = urls or {}
    if previous is None or percent is None:
        traffic = [{"revisionName": latest, "percent": 100, "latestRevision": True}]
    else:
        traffic = [
            {"revisionName": previous, "percent": 100 - percent, "latestRevision": False, "tag": "prev",
             "url": urls.get("prev")},
            {"revisionName": latest, "percent": percent, "latestRevision": True, "tag": "latest",
             "url": urls.get("latest")},
        ]
    predictor = {"latestCreatedRevision": latest, "latestReadyRevision": latest,
                 "latestRolledoutRevision": previous if percent else latest, "traffic": traffic}
    if previous:
        predictor["previousRolledoutRevision"] = previous
    return {
        "observedGeneration": generation,
        "url": "http://textclf.models.example.com",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                        **({} if ready else {"reason": "RevisionMissing", "message": "revision not ready"})}],
        "components": {"predictor": predictor},
    }
