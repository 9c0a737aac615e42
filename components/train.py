"""Train step: fine-tune the base model on the tokenized splits (``textclf.train``), on GPUs in the cloud.

Three ops, one training code (``textclf.train``):

* ``train_op`` trains in its own task: one process, or ``torchrun`` over the task's GPUs
  (``gpus_per_node``). Locally and on Kubeflow with ``num_nodes`` = 1 it is the task; on
  Vertex it runs inside a CustomJob (``pipelines/pipeline.py`` wraps it), one replica per node.
* ``train_trainjob_op`` (Kubeflow, ``num_nodes`` > 1) submits a Kubeflow Trainer TrainJob and
  waits for it (``textclf.train.trainjob``).
* ``vertex_train_plan_op`` (Vertex) turns the GPU count into a machine type and the node count into
  the number of worker replicas, which the CustomJob's worker pools take.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl.component_decorator import component

from components.step import gpu_step, step
from textclf.images import COMPONENT_IMAGE, TRAINER_IMAGE
from textclf.tracking import TrackingSettings
from textclf.train import TrainSettings
from textclf.train.launch import TrainLaunchSettings
from textclf.train.trainjob import TrainJobSettings

GPU_TYPE_HELP = "GKE accelerator label of the GPU pool (a compile option: python -m pipelines compile --gpu-type)."
TRAINER_IMAGE_HELP = "Image of the TrainJob's pods: the trainer image the pipeline was compiled with."
TUNED_HELP = "The tune step's result (JSON): its best settings replace the parameters of the same names. Empty: none."


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@gpu_step(TrainSettings, TrainLaunchSettings, TrackingSettings, wired={"tuned_settings": (TUNED_HELP, "")})
def train_op(
    base_model: str, epochs: int, learning_rate: float, batch_size: int, grad_accum_steps: int,
    warmup_ratio: float, weight_decay: float, group_by_length: bool, precision: str,
    early_stopping_patience: int, max_steps: int, seed: int, torch_compile: bool, attention_dropout: float,
    hidden_dropout: float, eval_batch_size: int, log_every: int, dataloader_workers: int, checkpoint_every_steps: int,
    checkpoint_every_minutes: float, min_train_steps: int, class_weighting: str, num_nodes: int, gpus_per_node: int,
    wandb_project: str, wandb_entity: str, wandb_api_key_secret: str, tuned_settings: str,
    dataset: dsl.Input[dsl.Dataset], tokenized: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model],
):
    """Fine-tune the base model as a sequence classifier.

    Args:
        dataset: Ingested dataset (its metadata gives the label names and the data fingerprint).
        tokenized: Tokenized splits from the tokenize step.
        model: Hugging Face model directory (config with id2label, safetensors, tokenizer, training.json).
    """
    import logging

    from textclf.settings import from_values
    from textclf.tracking import TrackingSettings
    from textclf.train import TrainSettings
    from textclf.train.launch import TrainLaunchSettings, train_in_task

    from textclf.tune.report import apply_tuning

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings, metadata = apply_tuning(from_values(TrainSettings, locals()), tuned_settings,
                                      {**dataset.metadata, **tokenized.metadata})
    summary = train_in_task(tokenized.path, model.path, model.uri, metadata, settings,
                            from_values(TrainLaunchSettings, locals()), from_values(TrackingSettings, locals()))
    if summary is None:
        raise SystemExit(0)  # a worker replica of a Vertex CustomJob: the primary replica writes the outputs
    model.metadata.update({k: summary[k] for k in ("labels", "base_model", "data_fingerprint", "precision", "code_version")})


@step(TrainSettings, TrainLaunchSettings, TrainJobSettings, TrackingSettings,
      wired={"gpu_type": (GPU_TYPE_HELP, ""), "trainer_image": (TRAINER_IMAGE_HELP, TRAINER_IMAGE),
             "tuned_settings": (TUNED_HELP, "")})
def train_trainjob_op(
    base_model: str, epochs: int, learning_rate: float, batch_size: int, grad_accum_steps: int,
    warmup_ratio: float, weight_decay: float, group_by_length: bool, precision: str,
    early_stopping_patience: int, max_steps: int, seed: int, torch_compile: bool, attention_dropout: float,
    hidden_dropout: float, eval_batch_size: int, log_every: int, dataloader_workers: int, checkpoint_every_steps: int,
    checkpoint_every_minutes: float, min_train_steps: int, class_weighting: str, num_nodes: int, gpus_per_node: int,
    trainjob_runtime: str, trainjob_service_account: str, trainjob_timeout_hours: float,
    wandb_project: str, wandb_entity: str, wandb_api_key_secret: str, gpu_type: str, trainer_image: str, tuned_settings: str,
    dataset: dsl.Input[dsl.Dataset], tokenized: dsl.Input[dsl.Dataset], model: dsl.Output[dsl.Model],
):
    """Fine-tune the base model on num_nodes GPU nodes as a Kubeflow Trainer TrainJob, and wait for it.

    Args:
        dataset: Ingested dataset (its metadata gives the label names and the data fingerprint).
        tokenized: Tokenized splits from the tokenize step (read by the TrainJob from its gs:// URI).
        model: Hugging Face model directory, written by the TrainJob to this artifact's gs:// URI.
    """
    import logging

    from textclf.settings import from_values
    from textclf.tracking import TrackingSettings
    from textclf.train import TrainSettings
    from textclf.train.launch import TrainLaunchSettings
    from textclf.train.trainjob import TrainJobSettings, run_trainjob

    from textclf.tune.report import apply_tuning

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings, metadata = apply_tuning(from_values(TrainSettings, locals()), tuned_settings,
                                      {**dataset.metadata, **tokenized.metadata})
    summary = run_trainjob(
        tokenized.uri, model.uri, model.path, metadata, settings, from_values(TrainLaunchSettings, locals()),
        from_values(TrainJobSettings, locals()), from_values(TrackingSettings, locals()), gpu_type, trainer_image,
    )
    model.metadata.update({k: summary[k] for k in ("labels", "base_model", "data_fingerprint", "precision", "code_version")})


# Not a settings step: it derives two values from the launch settings for the Vertex worker pools.
@component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def vertex_train_plan_op(num_nodes: int, gpus_per_node: int, accelerator_type: str) -> NamedTuple(
        "VertexTrainPlan", [("machine_type", str), ("worker_replicas", int)]):
    """The Vertex machine type for gpus_per_node GPUs of accelerator_type, and the worker replicas
    besides the primary one (num_nodes - 1): what a CustomJob's worker pools need, and what a
    pipeline parameter cannot compute."""
    from collections import namedtuple

    from textclf.train.launch import vertex_machine_type

    plan = namedtuple("VertexTrainPlan", ["machine_type", "worker_replicas"])
    return plan(vertex_machine_type(accelerator_type, gpus_per_node), num_nodes - 1)
