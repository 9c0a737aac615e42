"""Deploy step: the InferenceService manifest's fields, canary and logger."""

from pathlib import Path

import pytest
import yaml

from textclf.inferenceservice import DeploySettings, build_inference_service, write_manifest

MODEL = "gs://bucket/root/run-2/train-op/model"


def predictor(manifest):
    return manifest["spec"]["predictor"]


def test_manifest_fields(tmp_path):
    settings = DeploySettings(
        service_name="sentiment",
        namespace="ml",
        service_account="sa",
        min_replicas=2,
        max_replicas=5,
        serving_cpu="3",
        serving_memory="6Gi",
    )
    manifest = build_inference_service(MODEL, settings, metrics_uri="gs://bucket/m.json", backend="onnx-int8")
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "sentiment" and manifest["metadata"]["namespace"] == "ml"
    assert manifest["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert manifest["metadata"]["annotations"]["textclf.dev/metrics-uri"] == "gs://bucket/m.json"
    assert manifest["metadata"]["annotations"]["textclf.dev/serving-backend"] == "onnx-int8"
    spec = predictor(manifest)
    assert spec["serviceAccountName"] == "sa" and spec["minReplicas"] == 2 and spec["maxReplicas"] == 5
    assert "canaryTrafficPercent" not in spec and "logger" not in spec
    container = spec["containers"][0]
    assert container["name"] == "kserve-container"
    assert {"name": "STORAGE_URI", "value": MODEL} in container["env"]
    assert container["args"] == [
        "--model_name",
        "sentiment",
        "--model_dir",
        "/mnt/models",
        "--max_queued_requests",
        "16",
        "--backend",
        "onnx-int8",
    ]
    assert container["resources"]["limits"] == {"cpu": "3", "memory": "6Gi"}
    write_manifest(manifest, tmp_path / "isvc.yaml")
    assert yaml.safe_load((tmp_path / "isvc.yaml").read_text()) == manifest


def test_canary_only_when_another_model_is_live():
    live = "gs://bucket/root/run-1/train-op/model"
    canary = build_inference_service(MODEL, DeploySettings(live_model_uri=live, canary_traffic_percent=20))
    assert predictor(canary)["canaryTrafficPercent"] == 20
    assert canary["metadata"]["annotations"]["textclf.dev/previous-model-uri"] == live
    same = build_inference_service(MODEL, DeploySettings(live_model_uri=MODEL))
    assert "canaryTrafficPercent" not in predictor(same)


def test_gpu_and_logger():
    manifest = build_inference_service(MODEL, DeploySettings(serving_gpus=1, logger_url="http://monitor.ml.svc/"))
    assert predictor(manifest)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert predictor(manifest)["logger"] == {"mode": "all", "url": "http://monitor.ml.svc/"}


@pytest.mark.parametrize("backend, message", [("auto", "never auto"), ("onnx-fp8", "unknown backend 'onnx-fp8'")])
def test_a_manifest_pins_a_known_backend_by_name(backend, message):
    with pytest.raises(ValueError, match=message):
        build_inference_service(MODEL, DeploySettings(), backend=backend)


def test_the_backend_pinned_is_the_one_evaluate_scored(tmp_path):
    """serving_backend resolves with the model's serving.json; a mismatch with metrics.json is refused."""
    import json

    from textclf.inference.choice import pinned_backends

    (tmp_path / "serving.json").write_text(json.dumps({"backend": "onnx-int8"}))
    live = tmp_path / "live"
    live.mkdir()
    scored = {"serving": {"backend": "onnx-int8"}}
    assert pinned_backends(tmp_path, "auto", scored) == ("onnx-int8", "torch")
    assert pinned_backends(tmp_path, "auto", scored, str(live)) == ("onnx-int8", "torch")  # a live model from before
    (live / "serving.json").write_text(json.dumps({"backend": "onnx"}))
    assert pinned_backends(tmp_path, "onnx-int8", scored, str(live)) == ("onnx-int8", "onnx")
    with pytest.raises(ValueError, match="evaluate scored 'onnx-int8'"):
        pinned_backends(tmp_path, "torch", scored)
    with pytest.raises(ValueError, match="1 GPU.* would serve 'onnx-int8', which runs on the CPU"):
        pinned_backends(tmp_path, "auto", scored, gpus=1)
    assert pinned_backends(tmp_path, "torch", {"serving": {"backend": "torch"}}, gpus=1) == ("torch", "torch")


def test_standard_mode_runs_the_live_model_with_its_own_backend():
    manifest = build_inference_service(
        MODEL,
        DeploySettings(deployment_mode="standard", live_model_uri=LIVE),
        backend="onnx-int8",
        live_backend="torch",
    )
    assert predictor(manifest)["containers"][0]["args"][-2:] == ["--backend", "torch"]
    assert manifest["spec"]["canary"][0]["predictor"]["containers"][0]["args"][-2:] == ["--backend", "onnx-int8"]
    assert manifest["metadata"]["annotations"]["textclf.dev/serving-backend"] == "onnx-int8"


@pytest.mark.parametrize(
    "bad", [{"canary_traffic_percent": 0}, {"canary_traffic_percent": 100}, {"min_replicas": 4, "max_replicas": 2}]
)
def test_bad_settings_are_named(bad):
    with pytest.raises(ValueError):
        DeploySettings(**bad)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kserve"
IMAGE = "registry.example/textclf-server:abc123"


@pytest.mark.parametrize(
    "fixture, model, settings, metrics_uri",
    [
        ("serverless-first.yaml", "gs://bucket/root/run-1/train-op/model", DeploySettings(serving_image=IMAGE), ""),
        (
            "serverless-canary.yaml",
            "gs://bucket/root/run-2/train-op/model",
            DeploySettings(
                service_name="sentiment",
                namespace="ml",
                serving_image=IMAGE,
                live_model_uri="gs://bucket/root/run-1/train-op/model",
                canary_traffic_percent=20,
                serving_gpus=1,
                logger_url="http://textclf-monitor.ml.svc.cluster.local/",
            ),
            "gs://bucket/root/run-2/evaluate-op/evaluation/metrics.json",
        ),
    ],
)
def test_serverless_manifest_bytes_are_pinned(tmp_path, fixture, model, settings, metrics_uri):
    """The Serverless manifest is byte for byte what it was before Standard mode existed, plus the
    hardening of issue 19 and the pinned backend (``--backend`` and its annotation, since the optimize
    step): both rewrote the fixtures on purpose."""
    write_manifest(
        build_inference_service(model, settings, metrics_uri=metrics_uri, backend="onnx-int8"), tmp_path / fixture
    )
    assert (tmp_path / fixture).read_bytes() == (FIXTURES / fixture).read_bytes()


LIVE = "gs://bucket/root/run-1/train-op/model"
VARIANTS = {
    "first": {},
    "canary": {"live_model_uri": LIVE, "canary_traffic_percent": 20},
    "same-model": {"live_model_uri": MODEL},
    "gpu-logger": {"serving_gpus": 1, "logger_url": "http://monitor.ml.svc/", "live_model_uri": LIVE},
}


@pytest.mark.parametrize("mode", ["serverless", "standard"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_fits_kserves_crd_and_webhook(mode, variant):
    """Checked against KServe v0.20.0's own InferenceService CRD (tests/fixtures/kserve/), strictly."""
    from tests.rollout import crd
    from textclf.inferenceservice import admission_problems

    manifest = build_inference_service(
        MODEL, DeploySettings(deployment_mode=mode, **VARIANTS[variant]), metrics_uri="gs://bucket/m.json"
    )
    assert crd.problems(manifest) == []
    assert admission_problems(manifest) == []


def test_standard_mode_keeps_the_live_model_stable_and_adds_the_new_one_as_spec_canary():
    from textclf.inferenceservice import predictor_name

    manifest = build_inference_service(
        MODEL,
        DeploySettings(deployment_mode="standard", live_model_uri=LIVE, canary_traffic_percent=20, min_replicas=2),
    )
    annotations = manifest["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert "serving.kserve.io/enable-tag-routing" not in annotations
    assert annotations["textclf.dev/model-uri"] == MODEL and annotations["textclf.dev/previous-model-uri"] == LIVE
    stable = predictor(manifest)
    assert (
        stable["name"] == predictor_name(LIVE)
        and {"name": "STORAGE_URI", "value": LIVE} in stable["containers"][0]["env"]
    )
    assert "canaryTrafficPercent" not in stable and stable["minReplicas"] == 2
    [canary] = manifest["spec"]["canary"]
    assert canary["trafficPercent"] == 20
    assert canary["predictor"]["name"] == predictor_name(MODEL) != stable["name"]
    assert {"name": "STORAGE_URI", "value": MODEL} in canary["predictor"]["containers"][0]["env"]
    assert not {"minReplicas", "maxReplicas"} & canary["predictor"].keys()  # the canary's replicas follow its share
    first = build_inference_service(MODEL, DeploySettings(deployment_mode="standard"))
    assert "canary" not in first["spec"] and predictor(first)["name"] == predictor_name(MODEL)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"deployment_mode": "raw"}, "deployment_mode must be one of"),
        ({"deployment_mode": "standard", "min_replicas": 0}, "cannot scale to zero"),
        (
            {"deployment_mode": "standard", "service_name": "a-very-long-inference-service-name-for-standard"},
            "too long",
        ),
    ],
)
def test_bad_mode_settings_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        DeploySettings(**bad)


def hardened_predictors(manifest) -> list[dict]:
    """Every predictor the manifest runs: the stable one and each Standard-mode canary."""
    return [predictor(manifest)] + [canary["predictor"] for canary in manifest["spec"].get("canary", [])]


@pytest.mark.parametrize("mode", ["serverless", "standard"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_predictor_is_hardened_probed_and_bounded(mode, variant):
    """Field by field, for the stable predictor and any canary: the deploy step's server-side apply
    replaces ``containers`` whole, so whatever it leaves out is gone from the live service."""
    settings = DeploySettings(
        deployment_mode=mode,
        service_name="sentiment",
        request_timeout_seconds=45,
        container_concurrency=12,
        **VARIANTS[variant],
    )
    manifest = build_inference_service(MODEL, settings)
    for spec in hardened_predictors(manifest):
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        assert spec["timeout"] == 45
        assert spec.get("containerConcurrency") == (12 if mode == "serverless" else None)
        [container] = spec["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": 10001,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        args = container["args"]
        assert args[args.index("--max_queued_requests") + 1] == "12"  # Standard mode's only bound
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/v1/models/sentiment", "port": 8080}
            assert container[probe]["failureThreshold"] >= 3
        assert container["livenessProbe"]["initialDelaySeconds"] >= 30  # loading is not a dead pod
        assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        assert mounts == {"tmp": "/tmp", "cache": "/var/cache/textclf"}
        volumes = {volume["name"]: volume["emptyDir"] for volume in spec["volumes"]}
        assert volumes.keys() == mounts.keys() and all(v["sizeLimit"] for v in volumes.values())


def test_a_gpu_predictor_runs_the_cuda_image_unless_told_otherwise():
    from textclf import images

    cpu = build_inference_service(MODEL, DeploySettings())
    gpu = build_inference_service(MODEL, DeploySettings(serving_gpus=1))
    own = build_inference_service(MODEL, DeploySettings(serving_gpus=1, serving_image=IMAGE))
    assert predictor(cpu)["containers"][0]["image"] == images.SERVER_IMAGE
    assert predictor(gpu)["containers"][0]["image"] == images.SERVER_GPU_IMAGE == images.image("server-gpu")
    assert predictor(own)["containers"][0]["image"] == IMAGE


@pytest.mark.parametrize("bad", [{"request_timeout_seconds": 0}, {"container_concurrency": 0}])
def test_timeouts_and_concurrency_must_be_positive(bad):
    with pytest.raises(ValueError, match="must be at least 1"):
        DeploySettings(**bad)
