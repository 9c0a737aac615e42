"""The KServe InferenceService that serves a Model directory, as a plain manifest, in either mode.

Our server image is a custom predictor container: KServe's storage initializer downloads
``STORAGE_URI`` (the Model artifact) to ``/mnt/models`` before the server starts. When a model is
already live, the new one is a canary until an operator (or the canary analysis) promotes or
rolls it back. How depends on KServe's deployment mode:

- **Serverless** (Knative): one predictor; ``canaryTrafficPercent: N`` sends N% of the traffic to
  the newest Knative revision and the rest to the last one rolled out. Per-revision tag URLs.
- **Standard** (RawDeployment, no Knative needed): ``spec.predictor`` keeps serving the live model
  and ``spec.canary`` holds the new model's predictor with its ``trafficPercent``. KServe runs
  the canary as its own Deployment and Service, ``<service>-<predictor name>-predictor``, and
  splits the replicas by the percentage (``ceil(minReplicas * percent / 100)`` canary pods, the
  stable predictor's minReplicas reduced by as many, at least 1). Promote makes the canary's
  predictor the stable one (its Deployment is kept, so no pod restarts); rollback removes it.
  Predictor names here are ``model-<10 hex of sha256(model URI)>``, so one model always has one
  name (KServe's webhook refuses a name change without a model change).

Every predictor (Serverless and Standard, stable and canary) is hardened the same way, because
``containers`` is an atomic list that a server-side apply replaces whole: non-root (the image's
UID), read-only root filesystem with emptyDirs for ``/tmp`` and the caches, no privilege
escalation, every capability dropped, seccomp ``RuntimeDefault``, no service account token, and
readiness and liveness probes on the model's own route ``GET /v1/models/NAME``, which fails once the
batcher's workers are dead. Requests time out after ``request_timeout_seconds``; one pod takes at most
``container_concurrency`` requests (Knative's ``containerConcurrency`` in Serverless mode, and in
both modes the server's own ``--max_queued_requests``, past which it answers 503).

The manifest is a plain dict (the pod-level parts through the ``kubernetes`` client's models),
not kserve's SDK classes: ``import kserve`` parses ``sys.argv`` and loads the whole model server,
which this core package must not need. Its shape is checked against the pinned KServe release's
own InferenceService CRD schema in the tests; ``admission_problems`` checks what KServe's
admission webhook would refuse and a schema cannot say.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from textclf.images import SERVER_GPU_IMAGE, SERVER_IMAGE
from textclf.inference.backends import AUTO, REFERENCE, backend_kind
from textclf.settings import live_model_uri_setting, serving_backend_setting, setting

ANNOTATION_PREFIX = "textclf.dev"
MODEL_URI_ANNOTATION = f"{ANNOTATION_PREFIX}/model-uri"  # the model this manifest serves (read by rollout)
BACKEND_ANNOTATION = f"{ANNOTATION_PREFIX}/serving-backend"  # the backend its predictor runs (--backend)
API_VERSION = "serving.kserve.io/v1beta1"
SERVERLESS, STANDARD = "serverless", "standard"
DEPLOYMENT_MODES = (SERVERLESS, STANDARD)
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Published on no public gateway: outside callers come through manifests/auth's authenticated route.
VISIBILITY_LABEL = {"networking.kserve.io/visibility": "cluster-local"}
# What KServe's annotation values mean (v0.20.0 pkg/constants: Serverless and RawDeployment are the
# older names of Knative and Standard; its defaulting webhook rewrites them). We write the values
# every KServe with the feature understands: Serverless since 0.x, Standard since spec.canary exists.
MODE_OF_ANNOTATION = {"Serverless": SERVERLESS, "Knative": SERVERLESS, "RawDeployment": STANDARD, "Standard": STANDARD}
ANNOTATION_OF_MODE = {SERVERLESS: "Serverless", STANDARD: "Standard"}
CANARY_TRAFFIC = "canaryTrafficPercent"  # Serverless
KSERVE_CONTAINER = "kserve-container"
STORAGE_URI_ENV = "STORAGE_URI"
PREDICTOR_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # the CRD's pattern for predictor.name
DNS_LABEL_MAX = 63  # the predictor's Service is named <service>-<predictor name>-predictor
# Fields a Standard canary must not set (KServe's webhook: the canary runs fixed replicas derived
# from trafficPercent), and minReplicas, which would override that derivation.
CANARY_FORBIDDEN = ("workerSpec", "maxReplicas", "scaleTarget", "scaleMetric", "autoScaling")
CANARY_DROPPED = (*CANARY_FORBIDDEN, "name", CANARY_TRAFFIC, "minReplicas", "scaleMetricType")
SERVER_PORT = 8080  # kserve's default --http_port, the port Knative expects
SERVER_UID = 10001  # the user serving/Dockerfile creates; a high UID, apart from the node's users
MODEL_MOUNT = "/mnt/models"  # where KServe's storage initializer puts the model
# Writable places on a read-only root filesystem: serving/Dockerfile points TEXTCLF_CACHE_DIR (ONNX
# exports), HF_HOME and XDG_CACHE_HOME at CACHE_DIR. Each is an emptyDir with a size limit, so a runaway
# writer gets its pod evicted instead of filling the node's disk.
WRITABLE_DIRS = {"tmp": ("/tmp", "256Mi"), "cache": ("/var/cache/textclf", "2Gi")}


@dataclass
class DeploySettings:
    """What the InferenceService looks like."""

    service_name: str = setting("textclf", "InferenceService name, also the model name in the predict URL.")
    namespace: str = setting("textclf", "Kubernetes namespace of the InferenceService.")
    service_account: str = setting(
        "textclf-serving", "Service account of the predictor pods (Workload Identity reads the bucket)."
    )
    serving_image: str = setting(
        SERVER_IMAGE,
        "The model server image (serving/Dockerfile); with serving_gpus > 0 "
        "this default stands for its CUDA variant, textclf-server-gpu.",
    )
    live_model_uri: str = live_model_uri_setting()
    canary_traffic_percent: int = setting(10, "Share of traffic (1-99) the new model receives while it is a canary.")
    min_replicas: int = setting(1, "Fewest predictor pods (0 allows scale to zero in Serverless mode).")
    max_replicas: int = setting(3, "Most predictor pods.")
    serving_cpu: str = setting("2", "CPU request and limit per predictor pod.")
    serving_memory: str = setting("4Gi", "Memory request and limit per predictor pod.")
    serving_gpus: int = setting(0, "NVIDIA GPUs per predictor pod (0 serves on CPU).")
    logger_url: str = setting("", "URL of the drift monitor for KServe's request/response logger; empty disables it.")
    request_timeout_seconds: int = setting(
        60, "Seconds a request to the predictor may take before it is cut off (KServe's predictor timeout)."
    )
    container_concurrency: int = setting(
        16,
        "Most requests one predictor pod holds at once: Knative's "
        "containerConcurrency (Serverless) and the server's --max_queued_requests "
        "(both modes; 503 with Retry-After above it).",
    )
    serving_backend: str = serving_backend_setting()
    deployment_mode: str = setting(
        SERVERLESS,
        "KServe deployment mode: serverless (Knative revisions; canaryTrafficPercent) or standard "
        "(plain Deployments, no Knative; the canary in spec.canary, split by replica count).",
        choices=DEPLOYMENT_MODES,
    )
    apply: bool = setting(
        False, "Also create or patch the InferenceService in the cluster (needs the RBAC in manifests/setup/)."
    )

    def __post_init__(self):
        if not 1 <= self.canary_traffic_percent <= 99:
            raise ValueError(f"canary_traffic_percent must be 1-99, got {self.canary_traffic_percent}")
        if self.request_timeout_seconds < 1 or self.container_concurrency < 1:
            raise ValueError(
                f"request_timeout_seconds and container_concurrency must be at least 1, got "
                f"{self.request_timeout_seconds}, {self.container_concurrency}"
            )
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas, got {self.min_replicas}, {self.max_replicas}")
        if self.deployment_mode not in DEPLOYMENT_MODES:
            raise ValueError(f"deployment_mode must be one of {DEPLOYMENT_MODES}, got {self.deployment_mode!r}")
        if self.deployment_mode == STANDARD:
            if self.min_replicas < 1:
                raise ValueError("Standard mode cannot scale to zero (its HPA needs min_replicas >= 1)")
            longest = predictor_service_name(self.service_name, predictor_name("any"))
            if len(longest) > DNS_LABEL_MAX:
                raise ValueError(
                    f"service_name {self.service_name!r} is too long for Standard mode: the predictor "
                    f"Service {longest!r} must fit {DNS_LABEL_MAX} characters"
                )


def predictor_container(model_uri: str, settings: DeploySettings, backend: str = REFERENCE) -> dict:
    """The ``kserve-container``: our server image reading the model KServe puts at /mnt/models, with
    its backend pinned (``--backend``: every replica serves the same numbers, from the prebuilt artifact)."""
    from kubernetes.client import (
        ApiClient,
        V1Capabilities,
        V1Container,
        V1ContainerPort,
        V1EnvVar,
        V1ResourceRequirements,
        V1SeccompProfile,
        V1SecurityContext,
        V1VolumeMount,
    )

    if backend == AUTO:
        raise ValueError(
            "a manifest pins a backend by name, never auto: resolve it from the model's serving.json "
            "(textclf.inference.resolve_backend)"
        )
    backend_kind(backend)  # an unknown name fails here, not in a crash-looping pod

    limits = {"cpu": settings.serving_cpu, "memory": settings.serving_memory}
    if settings.serving_gpus:
        limits["nvidia.com/gpu"] = str(settings.serving_gpus)
    container = V1Container(
        name=KSERVE_CONTAINER,
        image=serving_image(settings),
        args=[
            "--model_name",
            settings.service_name,
            "--model_dir",
            MODEL_MOUNT,
            "--max_queued_requests",
            str(settings.container_concurrency),
            "--backend",
            backend,
        ],
        env=[V1EnvVar(name=STORAGE_URI_ENV, value=model_uri)],
        ports=[V1ContainerPort(container_port=SERVER_PORT, protocol="TCP")],
        readiness_probe=model_probe(settings.service_name, period=5, failures=3),
        liveness_probe=model_probe(settings.service_name, period=15, failures=4, initial_delay=60),
        resources=V1ResourceRequirements(
            requests={"cpu": settings.serving_cpu, "memory": settings.serving_memory}, limits=limits
        ),
        security_context=V1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=V1Capabilities(drop=["ALL"]),
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=SERVER_UID,
            run_as_group=SERVER_UID,
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[V1VolumeMount(name=name, mount_path=path) for name, (path, _) in WRITABLE_DIRS.items()],
    )
    return ApiClient().sanitize_for_serialization(container)


def serving_image(settings: DeploySettings) -> str:
    """The image the predictor runs: the CUDA build when it asks for GPUs and names no image of its own
    (the CPU image would leave the GPU idle)."""
    if settings.serving_gpus and settings.serving_image == SERVER_IMAGE:
        return SERVER_GPU_IMAGE
    return settings.serving_image


def model_probe(model_name: str, period: int, failures: int, initial_delay: int = 0):
    """An HTTP probe on the model's readiness route: 200 only while the model is loaded and the
    batcher's workers are alive, so a pod whose batcher died loses its traffic (readiness) and is
    restarted (liveness)."""
    from kubernetes.client import V1HTTPGetAction, V1Probe

    return V1Probe(
        http_get=V1HTTPGetAction(path=f"/v1/models/{model_name}", port=SERVER_PORT),
        initial_delay_seconds=initial_delay or None,
        period_seconds=period,
        timeout_seconds=5,
        failure_threshold=failures,
    )


def predictor_pod_fields(settings: DeploySettings) -> dict:
    """The pod-level half of the hardening: seccomp and non-root for every container KServe and Knative
    add (storage initializer, queue-proxy), no Kubernetes API token (the predictor never calls the API;
    Workload Identity does not need it), and the emptyDirs the read-only root filesystem needs."""
    from kubernetes.client import ApiClient, V1EmptyDirVolumeSource, V1PodSecurityContext, V1SeccompProfile, V1Volume

    volumes = [
        V1Volume(name=name, empty_dir=V1EmptyDirVolumeSource(size_limit=size))
        for name, (_, size) in WRITABLE_DIRS.items()
    ]
    security = V1PodSecurityContext(run_as_non_root=True, seccomp_profile=V1SeccompProfile(type="RuntimeDefault"))
    client = ApiClient()
    return {
        "automountServiceAccountToken": False,
        "securityContext": client.sanitize_for_serialization(security),
        "timeout": settings.request_timeout_seconds,
        "volumes": client.sanitize_for_serialization(volumes),
    }


def build_inference_service(
    model_uri: str,
    settings: DeploySettings,
    metrics_uri: str = "",
    backend: str = REFERENCE,
    live_backend: str = REFERENCE,
) -> dict:
    """The InferenceService for ``model_uri`` as a plain dict (ready for YAML or the API).

    With ``settings.live_model_uri`` set to another model, ``model_uri`` is its canary. ``backend``
    is the one ``model_uri`` serves with (the deploy step resolves ``serving_backend`` with the
    model's ``serving.json``); ``live_backend`` the live model's, for its predictor in Standard mode.
    Keys are in the order kserve's SDK serialises them (alphabetical within an object), so the
    YAML reads the same as kserve's own examples.
    """
    canary = bool(settings.live_model_uri) and settings.live_model_uri != model_uri
    serverless = settings.deployment_mode == SERVERLESS
    annotations = {
        # Canary traffic and its numbers work per Knative revision (Serverless) or per predictor
        # Deployment (Standard); the canary analysis reads per-pod metrics Prometheus scrapes.
        MODE_ANNOTATION: ANNOTATION_OF_MODE[settings.deployment_mode],
        **({"serving.kserve.io/enable-tag-routing": "true"} if serverless else {}),  # Knative tag URLs
        "serving.kserve.io/enable-prometheus-scraping": "true",
        MODEL_URI_ANNOTATION: model_uri,
        BACKEND_ANNOTATION: backend,
    }
    if metrics_uri:
        annotations[f"{ANNOTATION_PREFIX}/metrics-uri"] = metrics_uri
    if canary:
        annotations[f"{ANNOTATION_PREFIX}/previous-model-uri"] = settings.live_model_uri
    if serverless:
        spec = {
            "predictor": _predictor(model_uri, settings, backend, settings.canary_traffic_percent if canary else None)
        }
    else:
        spec = _standard_spec(model_uri, settings, canary, backend, live_backend)
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "annotations": annotations,
            "labels": {
                "app.kubernetes.io/name": settings.service_name,
                "app.kubernetes.io/part-of": "textclf",
                **VISIBILITY_LABEL,
            },
            "name": settings.service_name,
            "namespace": settings.namespace,
        },
        "spec": spec,
    }


def _predictor(model_uri: str, settings: DeploySettings, backend: str, canary_percent: int | None = None) -> dict:
    serverless = settings.deployment_mode == SERVERLESS
    predictor = {
        **predictor_pod_fields(settings),
        CANARY_TRAFFIC: canary_percent,
        # Knative's queue-proxy lets at most this many requests into the pod and queues the rest;
        # Standard mode has no queue-proxy: there the server's --max_queued_requests is the bound.
        "containerConcurrency": settings.container_concurrency if serverless else None,
        "containers": [predictor_container(model_uri, settings, backend)],
        "logger": {"mode": "all", "url": settings.logger_url} if settings.logger_url else None,
        "maxReplicas": settings.max_replicas,
        "minReplicas": settings.min_replicas,
        "serviceAccountName": settings.service_account,
    }
    return _sorted({key: value for key, value in predictor.items() if value is not None})


def _standard_spec(model_uri: str, settings: DeploySettings, canary: bool, backend: str, live_backend: str) -> dict:
    """Standard mode: the live model stays ``spec.predictor``; a new one is ``spec.canary[0]``."""
    stable_uri, stable_backend = (settings.live_model_uri, live_backend) if canary else (model_uri, backend)
    stable = _sorted({**_predictor(stable_uri, settings, stable_backend), "name": predictor_name(stable_uri)})
    spec: dict[str, Any] = {"predictor": stable}
    if canary:
        new = _predictor(model_uri, settings, backend)
        spec["canary"] = [canary_entry(new, predictor_name(model_uri), settings.canary_traffic_percent)]
    return spec


def canary_entry(predictor: dict, name: str, percent: int) -> dict:
    """A ``spec.canary`` item running ``predictor`` (minus what a canary may not set) at ``percent``."""
    canary = {key: copy.deepcopy(value) for key, value in predictor.items() if key not in CANARY_DROPPED}
    return {"predictor": _sorted({**canary, "name": name}), "trafficPercent": percent}


def _sorted(mapping: dict) -> dict:
    return dict(sorted(mapping.items()))


def predictor_name(model_uri: str) -> str:
    """The Standard-mode predictor name of a model: one name per model URI, a valid DNS label part."""
    return "model-" + hashlib.sha256(model_uri.encode()).hexdigest()[:10]


def predictor_service_name(service_name: str, name: str | None) -> str:
    """KServe's name of a predictor's Deployment and Service (constants.PredictorServiceName)."""
    return f"{service_name}-{name}-predictor" if name else f"{service_name}-predictor"


def model_uri_of(predictor: dict) -> str | None:
    """The model a predictor serves: ``STORAGE_URI`` of the kserve-container, or a ``storageUri``."""
    for container in predictor.get("containers") or []:
        if container.get("name") == KSERVE_CONTAINER:
            for env in container.get("env") or []:
                if env.get("name") == STORAGE_URI_ENV:
                    return env.get("value")
    for value in predictor.values():  # model: {storageUri}, sklearn: {storageUri}, ...
        if isinstance(value, dict) and value.get("storageUri"):
            return value["storageUri"]
    return None


def merge_canary(stable: dict, canary: dict) -> dict:
    """The predictor a Standard canary runs: the stable one with the canary's fields over it.

    KServe builds it with ``mergo.Merge(stable, canary, WithOverride)``: objects merge key by key,
    lists are replaced, and empty values (null, "", 0, false, [], {}) never override. Promoting
    makes this the stable predictor, which is exactly what the canary's pods already run.
    """
    merged = copy.deepcopy(stable)
    for key, value in canary.items():
        if value in (None, "", 0, False, [], {}):
            continue
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_canary(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def deployment_mode_of(isvc: dict) -> str | None:
    """``serverless``/``standard`` from the annotation (else the status KServe wrote); None if neither says.

    Raises:
        ValueError: a deployment mode this project does not roll out (ModelMesh) or does not know.
    """
    value = isvc.get("metadata", {}).get("annotations", {}).get(MODE_ANNOTATION) or isvc.get("status", {}).get(
        "deploymentMode"
    )
    if not value:
        return None
    if value not in MODE_OF_ANNOTATION:
        raise ValueError(f"deployment mode {value!r} is not one this tool rolls out ({', '.join(MODE_OF_ANNOTATION)})")
    return MODE_OF_ANNOTATION[value]


def admission_problems(isvc: dict) -> list[str]:
    """What KServe v0.20.0's admission webhook (or its controller) refuses that the CRD schema allows.

    From ``pkg/apis/serving/v1beta1/inference_service_validation.go`` (``validateCanarySpecs``)
    for Standard-mode canaries, plus the deployment-mode annotation and the Serverless/Standard
    canary fields each mode ignores.
    """
    try:
        mode = deployment_mode_of(isvc)
    except ValueError as error:
        return [str(error)]
    spec = isvc.get("spec", {})
    predictor = spec.get("predictor") or {}
    problems = []
    if mode == STANDARD and CANARY_TRAFFIC in predictor:
        problems.append(f"spec.predictor.{CANARY_TRAFFIC} does nothing in Standard mode: put the canary in spec.canary")
    if spec.get("canary"):
        if mode != STANDARD:
            problems.append("spec.canary is only supported in Standard deployment mode")
        problems.extend(_canary_problems(isvc.get("metadata", {}).get("name", ""), predictor, spec["canary"]))
    return problems


def _canary_problems(service_name: str, stable: dict, canaries: list[dict]) -> list[str]:
    problems = []
    if model_uri_of(stable) is None and "model" not in stable:
        problems.append(
            f"a canary needs a stable predictor with a model: env {STORAGE_URI_ENV} on "
            f"{KSERVE_CONTAINER}, or a storageUri"
        )
    names = [canary.get("predictor", {}).get("name") for canary in canaries]
    for index, (name, canary) in enumerate(zip(names, canaries)):
        where = f"spec.canary[{index}]"
        if not name:
            problems.append(f"{where}.predictor.name is required")
        elif names.count(name) > 1 or name == stable.get("name"):
            problems.append(
                f"{where}.predictor.name {name!r} must differ from the stable predictor's and the other canaries'"
            )
        elif len(predictor_service_name(service_name, name)) > DNS_LABEL_MAX:
            problems.append(
                f"{where}: Service name {predictor_service_name(service_name, name)!r} is over "
                f"{DNS_LABEL_MAX} characters"
            )
        forbidden = [key for key in CANARY_FORBIDDEN if canary.get("predictor", {}).get(key)]
        if forbidden:
            problems.append(f"{where}.predictor must not set {', '.join(forbidden)} (a canary runs fixed replicas)")
        if canary.get("predictor", {}).get("minReplicas", 0) > stable.get("minReplicas", 1):
            problems.append(f"{where}.predictor.minReplicas must not exceed the stable predictor's")
    if sum(canary.get("trafficPercent", 0) for canary in canaries) > 100:
        problems.append("the canaries' trafficPercent add up to more than 100")
    return problems


def write_manifest(manifest: dict, path: str) -> None:
    import yaml

    with open(path, "w") as f:
        yaml.safe_dump(manifest, f, sort_keys=False)
