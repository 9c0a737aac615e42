"""The KServe InferenceService that serves a Model directory, as a plain manifest.

Our server image is a custom predictor container: KServe's storage initializer downloads
``STORAGE_URI`` (the Model artifact) to ``/mnt/models`` before the server starts. When a model is
already live, the new one gets ``canaryTrafficPercent`` of the traffic until an operator (or the
canary analysis) promotes or rolls it back.

The manifest is a plain dict (the pod-level parts through the ``kubernetes`` client's models),
not kserve's SDK classes: ``import kserve`` parses ``sys.argv`` and loads the whole model server,
which this core package must not need. Its shape is checked against the pinned KServe release's
own InferenceService CRD schema in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from textclf.images import SERVER_IMAGE
from textclf.settings import live_model_uri_setting, setting

ANNOTATION_PREFIX = "textclf.dev"
API_VERSION = "serving.kserve.io/v1beta1"


@dataclass
class DeploySettings:
    """What the InferenceService looks like."""

    service_name: str = setting("textclf", "InferenceService name, also the model name in the predict URL.")
    namespace: str = setting("textclf", "Kubernetes namespace of the InferenceService.")
    service_account: str = setting("textclf-serving", "Service account of the predictor pods (Workload Identity "
                                   "reads the bucket).")
    serving_image: str = setting(SERVER_IMAGE, "The model server image (serving/Dockerfile).")
    live_model_uri: str = live_model_uri_setting()
    canary_traffic_percent: int = setting(10, "Share of traffic (1-99) the new model receives while it is a canary.")
    min_replicas: int = setting(1, "Fewest predictor pods (0 allows scale to zero in Serverless mode).")
    max_replicas: int = setting(3, "Most predictor pods.")
    serving_cpu: str = setting("2", "CPU request and limit per predictor pod.")
    serving_memory: str = setting("4Gi", "Memory request and limit per predictor pod.")
    serving_gpus: int = setting(0, "NVIDIA GPUs per predictor pod (0 serves on CPU).")
    logger_url: str = setting("", "URL of the drift monitor for KServe's request/response logger; empty disables it.")
    apply: bool = setting(False, "Also create or patch the InferenceService in the cluster (needs the RBAC in "
                          "manifests/setup/).")

    def __post_init__(self):
        if not 1 <= self.canary_traffic_percent <= 99:
            raise ValueError(f"canary_traffic_percent must be 1-99, got {self.canary_traffic_percent}")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")


def predictor_container(model_uri: str, settings: DeploySettings) -> dict:
    """The ``kserve-container``: our server image reading the model KServe puts at /mnt/models."""
    from kubernetes.client import ApiClient, V1Container, V1EnvVar, V1ResourceRequirements

    limits = {"cpu": settings.serving_cpu, "memory": settings.serving_memory}
    if settings.serving_gpus:
        limits["nvidia.com/gpu"] = str(settings.serving_gpus)
    container = V1Container(
        name="kserve-container",
        image=settings.serving_image,
        args=["--model_name", settings.service_name, "--model_dir", "/mnt/models"],
        env=[V1EnvVar(name="STORAGE_URI", value=model_uri)],
        resources=V1ResourceRequirements(requests={"cpu": settings.serving_cpu, "memory": settings.serving_memory},
                                         limits=limits),
    )
    return ApiClient().sanitize_for_serialization(container)


def build_inference_service(model_uri: str, settings: DeploySettings, metrics_uri: str = "") -> dict:
    """The InferenceService for ``model_uri`` as a plain dict (ready for YAML or the API).

    Keys are in the order kserve's SDK serialises them (alphabetical within an object), so the
    YAML reads the same as kserve's own examples.
    """
    canary = bool(settings.live_model_uri) and settings.live_model_uri != model_uri
    annotations = {
        # Canary rollout and per-revision tag URLs need Knative (Serverless) mode; the canary analysis
        # reads per-revision metrics that Prometheus scrapes from the pods.
        "serving.kserve.io/deploymentMode": "Serverless",
        "serving.kserve.io/enable-tag-routing": "true",
        "serving.kserve.io/enable-prometheus-scraping": "true",
        f"{ANNOTATION_PREFIX}/model-uri": model_uri,
    }
    if metrics_uri:
        annotations[f"{ANNOTATION_PREFIX}/metrics-uri"] = metrics_uri
    if canary:
        annotations[f"{ANNOTATION_PREFIX}/previous-model-uri"] = settings.live_model_uri
    predictor = {
        "canaryTrafficPercent": settings.canary_traffic_percent if canary else None,
        "containers": [predictor_container(model_uri, settings)],
        "logger": {"mode": "all", "url": settings.logger_url} if settings.logger_url else None,
        "maxReplicas": settings.max_replicas,
        "minReplicas": settings.min_replicas,
        "serviceAccountName": settings.service_account,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "annotations": annotations,
            "labels": {"app.kubernetes.io/name": settings.service_name, "app.kubernetes.io/part-of": "textclf"},
            "name": settings.service_name,
            "namespace": settings.namespace,
        },
        "spec": {"predictor": {key: value for key, value in predictor.items() if value is not None}},
    }


def write_manifest(manifest: dict, path: str) -> None:
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(manifest, f, sort_keys=False)
