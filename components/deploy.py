"""Deploy step: the KServe InferenceService that serves the new model.

The manifest is built with kserve's SDK classes (so it has the shape the CRD expects) and
written as YAML for a person or GitOps to apply; ``apply=True`` also sends it to the cluster.
Our server image is a custom predictor container: KServe's storage initializer downloads
``STORAGE_URI`` (the Model artifact) to ``/mnt/models`` before the server starts.
When a model is already live, the new one gets ``canaryTrafficPercent`` of the traffic until an
operator (or the canary analysis) promotes or rolls it back.
"""

from dataclasses import dataclass

from kfp import dsl

from components.images import SERVER_IMAGE, cpu_step

ANNOTATION_PREFIX = "textclf.dev"


@dataclass
class DeploySettings:
    """What the InferenceService looks like.

    Attributes:
        name: InferenceService name (also the model name in ``/v1/models/<name>:predict``).
        namespace: Kubernetes namespace.
        service_account: service account of the predictor pods (Workload Identity reads the bucket).
        image: the model server image.
        live_model_uri: storage URI of the model now in production; when set (and different from the
            new model), the new model is rolled out as a canary.
        canary_traffic_percent: share of traffic the canary gets (1-99).
        min_replicas: fewest predictor pods (0 allows scale to zero in Serverless mode).
        max_replicas: most predictor pods.
        cpu: CPU request and limit per pod.
        memory: memory request and limit per pod.
        gpus: NVIDIA GPUs per pod (0 = CPU serving).
        logger_url: where KServe's logger sends request/response events (the drift monitor); empty = off.
    """

    name: str = "textclf"
    namespace: str = "textclf"
    service_account: str = "textclf-serving"
    image: str = SERVER_IMAGE
    live_model_uri: str = ""
    canary_traffic_percent: int = 10
    min_replicas: int = 1
    max_replicas: int = 3
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = 0
    logger_url: str = ""

    def __post_init__(self):
        if not 1 <= self.canary_traffic_percent <= 99:
            raise ValueError(f"canary_traffic_percent must be 1-99, got {self.canary_traffic_percent}")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")


def build_inference_service(model_uri: str, settings: DeploySettings, metrics_uri: str = "") -> dict:
    """The InferenceService for ``model_uri`` as a plain dict (ready for YAML or the API)."""
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1LoggerSpec, V1beta1PredictorSpec
    from kubernetes.client import ApiClient, V1Container, V1EnvVar, V1ObjectMeta, V1ResourceRequirements

    limits = {"cpu": settings.cpu, "memory": settings.memory}
    if settings.gpus:
        limits["nvidia.com/gpu"] = str(settings.gpus)
    container = V1Container(
        name="kserve-container",
        image=settings.image,
        args=["--model_name", settings.name, "--model_dir", "/mnt/models"],
        env=[V1EnvVar(name="STORAGE_URI", value=model_uri)],
        resources=V1ResourceRequirements(requests={"cpu": settings.cpu, "memory": settings.memory}, limits=limits),
    )
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
    isvc = V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name=settings.name,
            namespace=settings.namespace,
            labels={"app.kubernetes.io/name": settings.name, "app.kubernetes.io/part-of": "textclf"},
            annotations=annotations,
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                containers=[container],
                service_account_name=settings.service_account,
                min_replicas=settings.min_replicas,
                max_replicas=settings.max_replicas,
                canary_traffic_percent=settings.canary_traffic_percent if canary else None,
                logger=V1beta1LoggerSpec(mode="all", url=settings.logger_url) if settings.logger_url else None,
            )
        ),
    )
    return ApiClient().sanitize_for_serialization(isvc)


def write_manifest(manifest: dict, path: str) -> None:
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(manifest, f, sort_keys=False)


@cpu_step
def deploy_op(
    model: dsl.Input[dsl.Model],
    evaluation: dsl.Input[dsl.Artifact],
    name: str,
    namespace: str,
    service_account: str,
    live_model_uri: str,
    canary_traffic_percent: int,
    min_replicas: int,
    max_replicas: int,
    cpu: str,
    memory: str,
    gpus: int,
    logger_url: str,
    apply: bool,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    manifest: dsl.Output[dsl.Artifact],
):
    """Write the KServe InferenceService manifest for the model (and apply it when asked).

    Args:
        model: The trained Model directory; its URI becomes the predictor's storage URI.
        evaluation: The evaluate step's directory; its metrics.json URI is recorded on the service.
        name: InferenceService name, also the model name in the predict URL.
        namespace: Kubernetes namespace of the InferenceService.
        service_account: Service account of the predictor pods.
        live_model_uri: Storage URI of the model in production; when set, the new model is a canary.
        canary_traffic_percent: Share of traffic (1-99) the canary receives.
        min_replicas: Fewest predictor pods.
        max_replicas: Most predictor pods.
        cpu: CPU per predictor pod.
        memory: Memory per predictor pod.
        gpus: NVIDIA GPUs per predictor pod (0 serves on CPU).
        logger_url: URL of the drift monitor for KServe's request/response logger; empty disables it.
        apply: Also create or patch the InferenceService in the cluster.
        wandb_project: W&B project; the model version gets the production alias there.
        wandb_entity: W&B team or user; empty uses the key's default.
        wandb_api_key_secret: Secret Manager version holding the W&B key (Vertex); empty uses WANDB_API_KEY.
        manifest: The InferenceService YAML.
    """
    import json
    import math
    from pathlib import Path

    from components import tracking
    from components.deploy import DeploySettings, build_inference_service, write_manifest
    from components.evaluate import HEADLINE, METRICS_FILE

    settings = DeploySettings(
        name=name, namespace=namespace, service_account=service_account, live_model_uri=live_model_uri,
        canary_traffic_percent=canary_traffic_percent, min_replicas=min_replicas, max_replicas=max_replicas,
        cpu=cpu, memory=memory, gpus=gpus, logger_url=logger_url,
    )
    isvc = build_inference_service(model.uri, settings, metrics_uri=evaluation.uri.rstrip("/") + "/metrics.json")
    write_manifest(isvc, manifest.path)
    manifest.metadata.update({"name": name, "namespace": namespace, "storage_uri": model.uri, "applied": apply})
    if apply:
        from serving.rollout import apply_inference_service

        apply_inference_service(isvc, namespace)
    metrics = json.loads((Path(evaluation.path) / METRICS_FILE).read_text())
    tracking.promote(
        tracking.TrackingSettings(project=wandb_project, entity=wandb_entity, api_key_secret=wandb_api_key_secret),
        model.path,
        {name: metrics[name] for name in HEADLINE if math.isfinite(metrics[name])},
    )
