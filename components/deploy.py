"""Deploy step: the InferenceService manifest for the new model (``textclf.inferenceservice``), applied
when asked (``textclf.rollout``), and the model's W&B alias ``approved`` (plus ``production`` when the
apply made it serve all traffic, as for the first model)."""

from kfp import dsl

from components.step import step
from textclf.inferenceservice import DeploySettings
from textclf.tracking import TrackingSettings


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@step(DeploySettings, TrackingSettings)
def deploy_op(
    service_name: str,
    namespace: str,
    service_account: str,
    serving_image: str,
    live_model_uri: str,
    canary_traffic_percent: int,
    min_replicas: int,
    max_replicas: int,
    serving_cpu: str,
    serving_memory: str,
    serving_gpus: int,
    logger_url: str,
    request_timeout_seconds: int,
    container_concurrency: int,
    serving_backend: str,
    deployment_mode: str,
    apply: bool,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    model: dsl.Input[dsl.Model],
    evaluation: dsl.Input[dsl.Artifact],
    manifest: dsl.Output[dsl.Artifact],
):
    """Write the KServe InferenceService manifest for the model (and apply it when asked).

    Args:
        model: The optimize step's Model directory (the one evaluate scored); its URI becomes the predictor's
            storage URI, and its serving.json resolves serving_backend auto.
        evaluation: The evaluate step's directory; its metrics.json URI is recorded on the service.
        manifest: The InferenceService YAML.
    """
    import json
    from pathlib import Path

    from textclf import tracking
    from textclf.evaluate import METRICS_FILE, scalar_metrics
    from textclf.inference.choice import pinned_backends
    from textclf.inferenceservice import STANDARD, DeploySettings, build_inference_service, write_manifest
    from textclf.settings import from_values

    settings = from_values(DeploySettings, locals())
    metrics = json.loads((Path(evaluation.path) / METRICS_FILE).read_text())
    # The live model's backend matters only to a Standard-mode manifest, which holds its predictor too.
    live_uri = settings.live_model_uri if deployment_mode == STANDARD and settings.live_model_uri != model.uri else ""
    backend, live_backend = pinned_backends(model.path, serving_backend, metrics, live_uri, serving_gpus)
    isvc = build_inference_service(
        model.uri,
        settings,
        metrics_uri=evaluation.uri.rstrip("/") + "/" + METRICS_FILE,
        backend=backend,
        live_backend=live_backend,
    )
    write_manifest(isvc, manifest.path)
    manifest.metadata.update(
        {
            "name": service_name,
            "namespace": namespace,
            "storage_uri": model.uri,
            "deployment_mode": deployment_mode,
            "applied": apply,
            "serving_backend": backend,
        }
    )
    live = None
    if apply:
        from textclf.rollout import apply_inference_service

        live = apply_inference_service(isvc, namespace)
    scalars = scalar_metrics(metrics)
    tracking_settings = from_values(tracking.TrackingSettings, locals())
    tracking.approve(tracking_settings, model.path, scalars, model_uri=model.uri)
    if live is not None:
        from textclf.rollout.operations import serving_model

        if serving_model(live) == model.uri:  # no canary needed (the first model): it serves everything now
            print(tracking.set_production_alias(tracking_settings, model.uri))
