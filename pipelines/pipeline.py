"""The training pipeline: (source version ->) ingest -> tokenize -> train -> evaluate -> gate -> deploy.

One definition, built for three targets that differ only in how the train task gets a GPU:
``kubeflow`` (GKE: ``nvidia.com/gpu`` limit, node selector and toleration through kfp-kubernetes),
``vertex`` (Vertex accelerator names; Vertex cannot load a kubernetes platform spec) and ``local``
(kfp's local runner, which ignores resources anyway).
"""

from kfp import dsl, kubernetes

from components.deploy import deploy_op
from components.evaluate import evaluate_op
from components.gate import PASS, gate_op
from components.ingest import ingest_op
from components.source_version import source_version_op
from components.tokenize import tokenize_op
from components.train import train_op

PIPELINE_NAME = "textclf-train"
TARGETS = ("local", "kubeflow", "vertex")
# GKE node label value -> Vertex AI accelerator name, for the GPUs a fine-tune runs on.
GPU_TYPES = {
    "nvidia-tesla-t4": "NVIDIA_TESLA_T4",
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-tesla-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100-80gb": "NVIDIA_H100_80GB",
}
DEFAULT_GPU_TYPE = "nvidia-l4"
CPU_STEP = {"cpu": "1", "memory": "4G"}
TRAIN_STEP = {"cpu": "4", "memory": "16G"}


def request_gpu(task: dsl.PipelineTask, target: str, gpu_type: str) -> None:
    """Put the train task on a GPU node of the target's kind."""
    if target == "kubeflow":
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        kubernetes.add_node_selector(task, "cloud.google.com/gke-accelerator", gpu_type)
        kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
    elif target == "vertex":
        task.set_accelerator_type(GPU_TYPES[gpu_type]).set_accelerator_limit(1)


def set_resources(task: dsl.PipelineTask, resources: dict) -> dsl.PipelineTask:
    return task.set_cpu_request(resources["cpu"]).set_memory_request(resources["memory"]).set_memory_limit(resources["memory"])


def build_pipeline(target: str = "local", gpu_type: str = DEFAULT_GPU_TYPE):
    """The pipeline function for ``target`` (``local``, ``kubeflow`` or ``vertex``)."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if gpu_type not in GPU_TYPES:
        raise ValueError(f"gpu_type must be one of {sorted(GPU_TYPES)}, got {gpu_type!r}")

    @dsl.pipeline(name=PIPELINE_NAME, description="Fine-tune a text classifier, evaluate, gate and roll it out on KServe.")
    def textclf_pipeline(
        source: str = "sample:2000",
        text_column: str = "text",
        label_column: str = "label",
        label_names: str = "",
        sample_size: int = 0,
        validation_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 42,
        base_model: str = "offline:all-MiniLM-L6-v2",
        max_length: int = 256,
        truncation: str = "head",
        epochs: int = 3,
        learning_rate: float = 1e-4,
        batch_size: int = 32,
        grad_accum_steps: int = 1,
        warmup_ratio: float = 0.06,
        weight_decay: float = 0.01,
        precision: str = "auto",
        early_stopping_patience: int = 1,
        max_steps: int = 0,
        torch_compile: bool = False,
        attention_dropout: float = 0.0,
        min_accuracy: float = 0.8,
        champion_metrics: str = "",
        max_regression: float = 0.01,
        missing_champion: str = "fail",
        min_mft_pass_rate: float = 0.7,
        min_inv_pass_rate: float = 0.85,
        min_dir_pass_rate: float = 0.7,
        allow_behaviour_not_applicable: bool = False,
        service_name: str = "textclf",
        namespace: str = "textclf",
        service_account: str = "textclf-serving",
        live_model_uri: str = "",
        canary_traffic_percent: int = 10,
        min_replicas: int = 1,
        max_replicas: int = 3,
        serving_cpu: str = "2",
        serving_memory: str = "4Gi",
        serving_gpus: int = 0,
        logger_url: str = "",
        apply: bool = False,
        wandb_project: str = "textclf",
        wandb_entity: str = "",
        wandb_api_key_secret: str = "",
    ):
        """Fine-tune a Hugging Face text classifier and roll it out as a KServe canary.

        Args:
            source: Data: sample:N (generated reviews), a .csv/.tsv/.parquet/.jsonl(.gz) path, gs://... or hf://owner/name.
            text_column: Column with the text.
            label_column: Column with the label (strings or ints).
            label_names: Comma-separated class names in id order for int labels (e.g. negative,positive).
            sample_size: Keep at most this many rows (stratified); 0 keeps all.
            validation_fraction: Share of rows for validation when the source has no split.
            test_fraction: Share of rows for test when the source has no split.
            seed: Seed for splitting, initialisation and batch order.
            base_model: offline:all-MiniLM-L6-v2 (packaged), a Hugging Face hub id, or a local/gs:// model directory.
            max_length: Longest input in tokens.
            truncation: head (keep the start of long texts) or head_tail (keep start and end).
            epochs: Passes over the training split (early stopping may end sooner).
            learning_rate: Peak learning rate after warmup.
            batch_size: Examples per micro-batch.
            grad_accum_steps: Micro-batches per optimizer step.
            warmup_ratio: Share of steps with linear warmup.
            weight_decay: AdamW weight decay.
            precision: auto, fp32, bf16 or fp16.
            early_stopping_patience: Epochs without a better validation loss before stopping; 0 never stops early.
            max_steps: Stop after this many optimizer steps; 0 means no limit.
            torch_compile: Compile the model with torch.compile.
            attention_dropout: Dropout on attention probabilities; 0 keeps fused attention (about 2x faster training on CPUs); negative keeps the base model's.
            min_accuracy: Lowest test accuracy that may deploy.
            champion_metrics: metrics.json (path or gs:// URI) of the production model, or wandb for the W&B production alias; used when live_model_uri is empty.
            max_regression: How far below the champion's accuracy the new model may be.
            missing_champion: fail or ignore, when a named champion's metrics cannot be had.
            min_mft_pass_rate: Lowest pass rate of the minimum-functionality behavioural suites (negation, ...).
            min_inv_pass_rate: Lowest pass rate of the invariance behavioural suites (typos, names, ...).
            min_dir_pass_rate: Lowest pass rate of the directional behavioural suites.
            allow_behaviour_not_applicable: Let models with non-sentiment labels (e.g. ham/spam) pass the behavioural rule.
            service_name: InferenceService name, also the model name in the predict URL.
            namespace: Kubernetes namespace of the InferenceService.
            service_account: Service account of the predictor pods.
            live_model_uri: Storage URI of the model now serving (the champion): scored on the same test split, and the new model is rolled out as its canary.
            canary_traffic_percent: Share of traffic (1-99) the canary receives.
            min_replicas: Fewest predictor pods.
            max_replicas: Most predictor pods.
            serving_cpu: CPU per predictor pod.
            serving_memory: Memory per predictor pod.
            serving_gpus: NVIDIA GPUs per predictor pod (0 serves on CPU).
            logger_url: URL of the drift monitor for KServe's request/response logger; empty disables it.
            apply: Also create or patch the InferenceService in the cluster (needs the RBAC in manifests/).
            wandb_project: W&B project of the train, evaluate and promote runs (offline without an API key).
            wandb_entity: W&B team or user; empty uses the key's default entity.
            wandb_api_key_secret: Secret Manager version holding the W&B key (Vertex), e.g. projects/P/secrets/wandb-api-key/versions/latest; empty uses WANDB_API_KEY (on Kubeflow, the `wandb` Kubernetes secret).
        """
        tracking = {"wandb_project": wandb_project, "wandb_entity": wandb_entity, "wandb_api_key_secret": wandb_api_key_secret}
        version = source_version_op(source=source)
        set_resources(version, CPU_STEP).set_caching_options(False).set_display_name("source-version")
        ingest = ingest_op(
            source=source, source_version=version.output, text_column=text_column, label_column=label_column, label_names=label_names,
            sample_size=sample_size, validation_fraction=validation_fraction, test_fraction=test_fraction, seed=seed,
        )
        set_resources(ingest, CPU_STEP).set_caching_options(True).set_display_name("ingest")
        tokenize = tokenize_op(
            dataset=ingest.outputs["dataset"], base_model=base_model, max_length=max_length, truncation=truncation
        )
        set_resources(tokenize, CPU_STEP).set_caching_options(True).set_display_name("tokenize")
        train = train_op(
            dataset=ingest.outputs["dataset"], tokenized=tokenize.outputs["tokenized"], base_model=base_model,
            epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, grad_accum_steps=grad_accum_steps,
            warmup_ratio=warmup_ratio, weight_decay=weight_decay, precision=precision,
            early_stopping_patience=early_stopping_patience, max_steps=max_steps, seed=seed, torch_compile=torch_compile,
            attention_dropout=attention_dropout, **tracking,
        )
        set_resources(train, TRAIN_STEP).set_retry(num_retries=2, backoff_duration="60s").set_display_name("train")
        request_gpu(train, target, gpu_type)
        evaluate = evaluate_op(
            model=train.outputs["model"], tokenized=tokenize.outputs["tokenized"], champion_model=live_model_uri, seed=seed,
            **tracking,
        )
        set_resources(evaluate, CPU_STEP).set_display_name("evaluate")
        gate = gate_op(
            evaluation=evaluate.outputs["evaluation"], min_accuracy=min_accuracy, champion_metrics=champion_metrics,
            max_regression=max_regression, missing_champion=missing_champion, min_mft_pass_rate=min_mft_pass_rate,
            min_inv_pass_rate=min_inv_pass_rate, min_dir_pass_rate=min_dir_pass_rate,
            allow_behaviour_not_applicable=allow_behaviour_not_applicable, **tracking,
        )
        set_resources(gate, CPU_STEP).set_caching_options(False).set_display_name("gate")
        with dsl.If(gate.outputs["Output"] == PASS, name="gate-passed"):
            deploy = deploy_op(
                model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"], name=service_name,
                namespace=namespace, service_account=service_account, live_model_uri=live_model_uri,
                canary_traffic_percent=canary_traffic_percent, min_replicas=min_replicas, max_replicas=max_replicas,
                cpu=serving_cpu, memory=serving_memory, gpus=serving_gpus, logger_url=logger_url, apply=apply,
                **tracking,
            )
            set_resources(deploy, CPU_STEP).set_caching_options(False).set_display_name("deploy")
        if target == "kubeflow":
            for task in (train, evaluate, gate, deploy):  # no key: W&B runs offline instead of failing the pod
                kubernetes.use_secret_as_env(task, secret_name="wandb", secret_key_to_env={"api-key": "WANDB_API_KEY"}, optional=True)

    return textclf_pipeline
