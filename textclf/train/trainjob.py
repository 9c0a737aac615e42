"""The train step on several GPU nodes: a Kubeflow Trainer v2 TrainJob, through the ``kubeflow`` SDK.

``train_trainjob_op`` (kubeflow target, ``num_nodes`` > 1) runs in a small CPU pod and:

1. submits a TrainJob on the ``torch-distributed`` runtime: ``num_nodes`` pods on the GPU pool
   (its node selector and toleration), ``gpus_per_node`` GPUs each, our trainer image, and the
   command ``torchrun --nproc_per_node=G -m textclf.train ...`` (the runtime sets torchrun's
   ``PET_*`` variables: node count, node rank, master address);
2. waits for it to start, streams node 0's log (rank 0 logs progress) into the step's log,
   and waits for it to end; a failed TrainJob fails the step with the job's reason;
3. copies the model the job wrote to the Model artifact's ``gs://`` URI into the artifact's
   local path, so KFP passes it on as with the single-pod path.

The TrainJob's pods read the tokenized splits from, and write the model and its checkpoints
to, the artifacts' ``gs://`` URIs: the pipeline root must be on Cloud Storage, and the pods'
service account must be allowed to write it (Workload Identity). The W&B key reaches them
as a reference to the ``wandb`` Kubernetes secret, never as a value.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from textclf.platform import storage
from textclf.encoding import TRAINING_FILE
from textclf.settings import setting
from textclf.train.checkpoint import checkpoint_location_for
from textclf.train.launch import CPU_PER_PROCESS, MEMORY_GB_PER_PROCESS, TrainLaunchSettings, cli_arguments
from textclf.train.settings import TrainSettings

log = logging.getLogger(__name__)

GPU_NODE_LABEL = "cloud.google.com/gke-accelerator"  # GKE's label of a GPU node's accelerator type
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}  # the GPU pool's taint
WANDB_SECRET, WANDB_SECRET_KEY = "wandb", "api-key"  # optional: without it W&B runs offline
TRAINER_CONTAINER = "node"  # the trainer's replicated job and container in Trainer's torch runtimes
SDK_MANAGER = "trainer.kubeflow.org/kubeflow-sdk"


@dataclass
class TrainJobSettings:
    """How the multi-node train step runs on Kubeflow Trainer (kubeflow target, num_nodes > 1)."""

    trainjob_runtime: str = setting("torch-distributed", "Kubeflow Trainer runtime of the TrainJob (a "
                                    "ClusterTrainingRuntime or a TrainingRuntime in the pipeline's namespace) used "
                                    "when num_nodes > 1; infra/install-platform.sh installs torch-distributed.")
    trainjob_service_account: str = setting("pipeline-runner", "Kubernetes service account of the TrainJob's pods: "
                                            "it must read and write the pipeline root's bucket (Workload Identity).")
    trainjob_timeout_hours: float = setting(24.0, "Longest a TrainJob may run (its activeDeadlineSeconds); the "
                                            "train step waits as long, then deletes it and fails.")

    def __post_init__(self):
        if self.trainjob_timeout_hours <= 0:
            raise ValueError(f"trainjob_timeout_hours must be positive, got {self.trainjob_timeout_hours}")


class TrainJobFailed(RuntimeError):
    """The TrainJob ended in Failed (or never finished in time)."""


class TrainJobTimeout(TrainJobFailed):
    """The TrainJob did not finish in time (it may still be running)."""


@dataclass(frozen=True)
class TrainJobRequest:
    """Everything the TrainJob is made of; plain data, so that it can be checked field by field."""

    name: str
    image: str
    command: list[str]
    num_nodes: int
    gpus_per_node: int
    gpu_type: str  # value of GPU_NODE_LABEL; empty: CPU nodes (no GPU, no node selector)
    service_account: str
    runtime: str
    timeout_seconds: int

    def resources_per_node(self) -> dict[str, str]:
        """One training process per GPU, each with its share of CPU and memory (requests = limits)."""
        resources = {"cpu": str(CPU_PER_PROCESS * self.gpus_per_node), "memory": f"{MEMORY_GB_PER_PROCESS * self.gpus_per_node}Gi"}
        return {**resources, "gpu": str(self.gpus_per_node)} if self.gpu_type else resources

    def pod_patch(self):
        from kubeflow.trainer.options import ContainerPatch, PodSpecPatch

        secret = {"secretKeyRef": {"name": WANDB_SECRET, "key": WANDB_SECRET_KEY, "optional": True}}
        container = ContainerPatch(name=TRAINER_CONTAINER, env=[{"name": "WANDB_API_KEY", "valueFrom": secret}])
        gpu = {"node_selector": {GPU_NODE_LABEL: self.gpu_type}, "tolerations": [GPU_TOLERATION]} if self.gpu_type else {}
        return PodSpecPatch(service_account_name=self.service_account, containers=[container], **gpu)

    def options(self) -> list:
        from kubeflow.trainer.options import (ActiveDeadlineSeconds, JobSetSpecPatch, JobSetTemplatePatch, JobSpecPatch,
                                              JobTemplatePatch, Labels, Name, PodTemplatePatch, ReplicatedJobPatch,
                                              RuntimePatch, TrainerCommand, TrainingRuntimeSpecPatch)

        node_pods = ReplicatedJobPatch(name=TRAINER_CONTAINER, template=JobTemplatePatch(spec=JobSpecPatch(
            template=PodTemplatePatch(spec=self.pod_patch()))))
        patch = RuntimePatch(training_runtime_spec=TrainingRuntimeSpecPatch(template=JobSetTemplatePatch(
            spec=JobSetSpecPatch(replicated_jobs=[node_pods]))))
        labels = {"app.kubernetes.io/name": "textclf-train", "app.kubernetes.io/part-of": "textclf"}
        return [Name(self.name), Labels(labels), TrainerCommand(self.command), ActiveDeadlineSeconds(self.timeout_seconds), patch]

    def trainer(self):
        from kubeflow.trainer import CustomTrainerContainer

        return CustomTrainerContainer(image=self.image, num_nodes=self.num_nodes, resources_per_node=self.resources_per_node())


def new_request(tokenized_uri: str, model_uri: str, metadata: dict, settings: TrainSettings, launch: TrainLaunchSettings,
                job: TrainJobSettings, tracking_settings, gpu_type: str, image: str) -> TrainJobRequest:
    """The TrainJob for one train step.

    Raises:
        ValueError: an artifact is not on object storage (the TrainJob's pods share no volume with the step).
    """
    for what, uri in (("tokenized dataset", tokenized_uri), ("model", model_uri)):
        if not storage.is_shared(uri):
            raise ValueError(f"num_nodes > 1 runs a TrainJob whose pods read and write the artifacts on object storage, "
                             f"but the {what} is at {uri!r}: submit the run with a pipeline root on object storage "
                             "(gs://, s3://)")
    command = ["torchrun", f"--nproc_per_node={launch.gpus_per_node}", "-m", "textclf.train",
               *cli_arguments(tokenized_uri, model_uri, metadata, checkpoint_location_for(model_uri), settings, tracking_settings)]
    return TrainJobRequest(
        name=f"textclf-train-{uuid.uuid4().hex[:8]}", image=image, command=command, num_nodes=launch.num_nodes,
        gpus_per_node=launch.gpus_per_node, gpu_type=gpu_type, service_account=job.trainjob_service_account,
        runtime=job.trainjob_runtime, timeout_seconds=max(1, round(job.trainjob_timeout_hours * 3600)),
    )


def submit(client, request: TrainJobRequest) -> str:
    """Create the TrainJob; returns its name."""
    name = client.train(runtime=request.runtime, trainer=request.trainer(), options=request.options())
    log.info("TrainJob %s: %d node(s) x %d GPU(s) of %s, runtime %s", name, request.num_nodes, request.gpus_per_node,
             request.gpu_type or "CPU", request.runtime)
    return name


def follow(client, name: str, timeout_seconds: float, echo: Callable[[str], None] = print, poll_seconds: int = 10):
    """Wait for the TrainJob to run, stream node 0's log, wait for it to end.

    Raises:
        TrainJobFailed: the job failed.
        TrainJobTimeout: it did not end within ``timeout_seconds``.
    """
    deadline = time.monotonic() + timeout_seconds

    def wait(status: set[str]):
        left = max(deadline - time.monotonic(), poll_seconds + 1)
        try:
            return client.wait_for_job_status(name, status | {"Failed"}, timeout=left, polling_interval=poll_seconds)
        except TimeoutError as error:
            raise TrainJobTimeout(f"TrainJob {name} did not reach {sorted(status)} within {timeout_seconds:.0f}s") from error

    job = wait({"Running", "Complete"})
    if job.status == "Running":
        for line in client.get_job_logs(name, follow=True):
            echo(line.rstrip("\n"))
        job = wait({"Complete"})
    if job.status == "Failed":
        events = "; ".join(f"{e.involved_object_kind} {e.involved_object_name}: {e.reason}: {e.message}"
                           for e in client.get_job_events(name)[-5:])
        raise TrainJobFailed(f"TrainJob {name} failed; last events: {events or 'none'}")
    log.info("TrainJob %s completed", name)
    return job


def _raise_on_sigterm(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def run_trainjob(tokenized_uri: str, model_uri: str, model_path: str, metadata: dict, settings: TrainSettings,
                 launch: TrainLaunchSettings, job: TrainJobSettings, tracking_settings, gpu_type: str, image: str,
                 client=None, poll_seconds: int = 10) -> dict:
    """Train on ``launch.num_nodes`` nodes as a TrainJob and put the model at ``model_path``.

    A step that is stopped (the run cancelled: SIGTERM) or gives up waiting deletes the TrainJob,
    so that no GPU node keeps training for nobody. Returns ``training.json``'s content.
    """
    request = new_request(tokenized_uri, model_uri, metadata, settings, launch, job, tracking_settings, gpu_type, image)
    if client is None:
        from kubeflow.trainer import TrainerClient

        client = TrainerClient()  # in the pod: its service account and namespace
    name = submit(client, request)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        follow(client, name, request.timeout_seconds, poll_seconds=poll_seconds)
    except (TrainJobTimeout, SystemExit, KeyboardInterrupt) as error:  # a failed job holds no GPU: kept for its logs
        log.warning("deleting TrainJob %s: %s", name, error)
        client.delete_job(name)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    with tempfile.TemporaryDirectory(prefix="trainjob-model-") as tmp:
        shutil.copytree(storage.localize(model_uri, tmp), model_path, dirs_exist_ok=True)
    return json.loads((Path(model_path) / TRAINING_FILE).read_text())
