"""The Kubeflow Trainer v2 client: a TrainJob on the GPU pool, followed to its end, through the ``kubeflow`` SDK.

A :class:`TrainJobRequest` is plain data (name, image, command, nodes, GPUs per node, GPU type,
service account, runtime, deadline); :func:`run` submits it on the runtime (``torch-distributed``:
``num_nodes`` pods on the GPU pool, by its node selector and toleration, ``gpus_per_node`` GPUs
each), waits for it to start, streams node 0's log into the caller's, waits for it to end, and
deletes it when the caller is stopped (SIGTERM) or gives up waiting, so that no GPU node keeps
training for nobody. The W&B key reaches the pods as a reference to the ``wandb`` Kubernetes
secret, never as a value. What runs in the pods (the torchrun command) is the caller's: the train
launcher (``textclf.train.launch``) and the Katib tuner (``textclf.tune.katib``).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from textclf.platform.gke import GPU_NODE_LABEL, GPU_TOLERATION, WANDB_SECRET, WANDB_SECRET_KEY
from textclf.settings import setting

log = logging.getLogger(__name__)

# Each training process (one per GPU) gets this much of its node: requests of the TrainJob's pods.
CPU_PER_PROCESS = 4
MEMORY_GB_PER_PROCESS = 16
TRAINER_CONTAINER = "node"  # the trainer's replicated job and container in Trainer's torch runtimes
SDK_MANAGER = "trainer.kubeflow.org/kubeflow-sdk"


@dataclass
class TrainJobSettings:
    """How the multi-node train step runs on Kubeflow Trainer (kubeflow target, num_nodes > 1)."""

    trainjob_runtime: str = setting(
        "torch-distributed",
        "Kubeflow Trainer runtime of the TrainJob (a "
        "ClusterTrainingRuntime or a TrainingRuntime in the pipeline's namespace) used "
        "when num_nodes > 1; infra/install-platform.sh installs torch-distributed.",
    )
    trainjob_service_account: str = setting(
        "pipeline-runner",
        "Kubernetes service account of the TrainJob's pods: "
        "it must read and write the pipeline root's bucket (Workload Identity).",
    )
    trainjob_timeout_hours: float = setting(
        24.0,
        "Longest a TrainJob may run (its activeDeadlineSeconds); the "
        "train step waits as long, then deletes it and fails.",
    )

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
        resources = {
            "cpu": str(CPU_PER_PROCESS * self.gpus_per_node),
            "memory": f"{MEMORY_GB_PER_PROCESS * self.gpus_per_node}Gi",
        }
        return {**resources, "gpu": str(self.gpus_per_node)} if self.gpu_type else resources

    def pod_patch(self):
        from kubeflow.trainer.options import ContainerPatch, PodSpecPatch

        secret = {"secretKeyRef": {"name": WANDB_SECRET, "key": WANDB_SECRET_KEY, "optional": True}}
        container = ContainerPatch(name=TRAINER_CONTAINER, env=[{"name": "WANDB_API_KEY", "valueFrom": secret}])
        on_gpus = bool(self.gpu_type)
        return PodSpecPatch(
            service_account_name=self.service_account,
            containers=[container],
            node_selector={GPU_NODE_LABEL: self.gpu_type} if on_gpus else None,
            tolerations=[GPU_TOLERATION] if on_gpus else None,
        )

    def options(self) -> list:
        from kubeflow.trainer.options import (
            ActiveDeadlineSeconds,
            JobSetSpecPatch,
            JobSetTemplatePatch,
            JobSpecPatch,
            JobTemplatePatch,
            Labels,
            Name,
            PodTemplatePatch,
            ReplicatedJobPatch,
            RuntimePatch,
            TrainerCommand,
            TrainingRuntimeSpecPatch,
        )

        node_pods = ReplicatedJobPatch(
            name=TRAINER_CONTAINER,
            template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=self.pod_patch()))),
        )
        patch = RuntimePatch(
            training_runtime_spec=TrainingRuntimeSpecPatch(
                template=JobSetTemplatePatch(spec=JobSetSpecPatch(replicated_jobs=[node_pods]))
            )
        )
        labels = {"app.kubernetes.io/name": "textclf-train", "app.kubernetes.io/part-of": "textclf"}
        return [
            Name(self.name),
            Labels(labels),
            TrainerCommand(self.command),
            ActiveDeadlineSeconds(self.timeout_seconds),
            patch,
        ]

    def trainer(self):
        from kubeflow.trainer import CustomTrainerContainer

        return CustomTrainerContainer(
            image=self.image, num_nodes=self.num_nodes, resources_per_node=self.resources_per_node()
        )


def submit(client, request: TrainJobRequest) -> str:
    """Create the TrainJob; returns its name."""
    name = client.train(runtime=request.runtime, trainer=request.trainer(), options=request.options())
    log.info(
        "TrainJob %s: %d node(s) x %d GPU(s) of %s, runtime %s",
        name,
        request.num_nodes,
        request.gpus_per_node,
        request.gpu_type or "CPU",
        request.runtime,
    )
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
            raise TrainJobTimeout(
                f"TrainJob {name} did not reach {sorted(status)} within {timeout_seconds:.0f}s"
            ) from error

    job = wait({"Running", "Complete"})
    if job.status == "Running":
        for line in client.get_job_logs(name, follow=True):
            echo(line.rstrip("\n"))
        job = wait({"Complete"})
    if job.status == "Failed":
        events = "; ".join(
            f"{e.involved_object_kind} {e.involved_object_name}: {e.reason}: {e.message}"
            for e in client.get_job_events(name)[-5:]
        )
        raise TrainJobFailed(f"TrainJob {name} failed; last events: {events or 'none'}")
    log.info("TrainJob %s completed", name)
    return job


def _raise_on_sigterm(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def run(request: TrainJobRequest, client=None, poll_seconds: int = 10) -> str:
    """Submit the TrainJob and follow it to its end; returns its name.

    A caller that is stopped (the run cancelled: SIGTERM) or gives up waiting deletes the TrainJob;
    a failed job holds no GPU and is kept for its logs.

    Raises:
        TrainJobFailed: the job failed.
        TrainJobTimeout: it did not end within the request's deadline (it is deleted).
    """
    if client is None:
        from kubeflow.trainer import TrainerClient

        client = TrainerClient()  # in the pod: its service account and namespace
    name = submit(client, request)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        follow(client, name, request.timeout_seconds, poll_seconds=poll_seconds)
    except (TrainJobTimeout, SystemExit, KeyboardInterrupt) as error:
        log.warning("deleting TrainJob %s: %s", name, error)
        client.delete_job(name)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return name
