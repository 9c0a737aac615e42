"""Train step: fine-tune the base model on the tokenized splits (``textclf.train``), on GPUs in the cloud.

One op, ``train_op``, on every target, with one signature; its launcher
(``textclf.train.launch.train_step``) decides at run time how training runs: in the task's own
process, torchrun over the task's GPUs (``gpus_per_node``), torchrun across the replicas of a
Vertex CustomJob, or a Kubeflow Trainer TrainJob (``num_nodes`` > 1 on Kubeflow). What a target
adds at compile time is only where the task runs (``pipelines/pipeline.py``: the GPU pool's node
selector and toleration on Kubeflow; the CustomJob wrapping on Vertex).

``vertex_train_plan_op`` (Vertex) turns the GPU count into a machine type and the node count into
the number of worker replicas, which the CustomJob's worker pools take.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl.component_decorator import component

from components.step import gpu_step
from textclf.images import COMPONENT_IMAGE, TRAINER_IMAGE
from textclf.platform.trainjob import TrainJobSettings
from textclf.tracking import TrackingSettings
from textclf.train import TrainSettings
from textclf.train.launch import TrainLaunchSettings

GPU_TYPE_HELP = "GKE accelerator label of the GPU pool (a compile option: python -m pipelines compile --gpu-type)."
TRAINER_IMAGE_HELP = "Image of the TrainJob's pods: the trainer image the pipeline was compiled with."
TUNED_HELP = "The tune step's result (JSON): its best settings replace the parameters of the same names. Empty: none."


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@gpu_step(
    TrainSettings,
    TrainLaunchSettings,
    TrainJobSettings,
    TrackingSettings,
    wired={
        "gpu_type": (GPU_TYPE_HELP, ""),
        "trainer_image": (TRAINER_IMAGE_HELP, TRAINER_IMAGE),
        "tuned_settings": (TUNED_HELP, ""),
    },
)
def train_op(
    base_model: str,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    grad_accum_steps: int,
    warmup_ratio: float,
    weight_decay: float,
    group_by_length: bool,
    precision: str,
    early_stopping_patience: int,
    max_steps: int,
    seed: int,
    torch_compile: bool,
    attention_dropout: float,
    hidden_dropout: float,
    eval_batch_size: int,
    log_every: int,
    dataloader_workers: int,
    checkpoint_every_steps: int,
    checkpoint_every_minutes: float,
    min_train_steps: int,
    class_weighting: str,
    num_nodes: int,
    gpus_per_node: int,
    trainjob_runtime: str,
    trainjob_service_account: str,
    trainjob_timeout_hours: float,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    gpu_type: str,
    trainer_image: str,
    tuned_settings: str,
    dataset: dsl.Input[dsl.Dataset],
    tokenized: dsl.Input[dsl.Dataset],
    model: dsl.Output[dsl.Model],
):
    """Fine-tune the base model as a sequence classifier: in this task, over its GPUs, across a
    Vertex CustomJob's replicas, or as a Kubeflow Trainer TrainJob, as the launch settings ask.

    Args:
        dataset: Ingested dataset (its metadata gives the label names and the data fingerprint).
        tokenized: Tokenized splits from the tokenize step (a TrainJob reads them from their gs:// URI).
        model: Hugging Face model directory (config with id2label, safetensors, tokenizer, training.json).
    """
    import logging

    from textclf.platform.trainjob import TrainJobSettings
    from textclf.settings import from_values
    from textclf.tracking import TrackingSettings
    from textclf.train import TrainSettings
    from textclf.train.launch import TrainJobTarget, TrainLaunchSettings, train_step
    from textclf.tune.report import apply_tuning

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings, metadata = apply_tuning(
        from_values(TrainSettings, locals()), tuned_settings, {**dataset.metadata, **tokenized.metadata}
    )
    cluster = TrainJobTarget(from_values(TrainJobSettings, locals()), gpu_type, trainer_image)
    summary = train_step(
        tokenized,
        model,
        metadata,
        settings,
        from_values(TrainLaunchSettings, locals()),
        from_values(TrackingSettings, locals()),
        cluster,
    )
    if summary is None:
        raise SystemExit(0)  # a worker replica of a Vertex CustomJob: the primary replica writes the outputs
    model.metadata.update(
        {k: summary[k] for k in ("labels", "base_model", "data_fingerprint", "precision", "code_version")}
    )


# Not a settings step: it derives two values from the launch settings for the Vertex worker pools.
@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def vertex_train_plan_op(num_nodes: int, gpus_per_node: int, accelerator_type: str) -> NamedTuple(
    "VertexTrainPlan", [("machine_type", str), ("worker_replicas", int)]
):
    """The Vertex machine type for gpus_per_node GPUs of accelerator_type, and the worker replicas
    besides the primary one (num_nodes - 1): what a CustomJob's worker pools need, and what a
    pipeline parameter cannot compute."""
    from collections import namedtuple

    from textclf.platform.vertex import vertex_machine_type

    plan = namedtuple("VertexTrainPlan", ["machine_type", "worker_replicas"])
    return plan(vertex_machine_type(accelerator_type, gpus_per_node), num_nodes - 1)
