"""One training launch: where the train step's processes run, decided at run time.

The train step is one op on every target (``components/train.py``); it calls :func:`train_step`,
which picks the launch from the launch settings and from the machine it finds itself on:

* **one process** (``num_nodes`` = ``gpus_per_node`` = 1): trains inside the calling process, the
  path ``make run`` takes;
* **torchrun on this machine** (``gpus_per_node`` > 1: the task's GPUs, or locally that many gloo
  processes on CPU): ``torchrun --standalone``, one process per GPU, each running
  ``python -m textclf.train`` (the command line in ``textclf/train/__main__.py``);
* **Vertex worker pools** (a replica of a Vertex AI CustomJob: Vertex sets ``CLUSTER_SPEC``):
  torchrun with ``--nnodes/--node_rank/--master_addr`` from it, on every replica
  (``textclf.platform.vertex``);
* **a Kubeflow Trainer TrainJob** (``num_nodes`` > 1 in a Kubernetes pod, i.e. on Kubeflow): the
  step submits ``num_nodes`` pods running ``torchrun -m textclf.train`` (the runtime sets
  ``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR``, ``PET_MASTER_PORT``, which torchrun
  reads), follows the job (``textclf.platform.trainjob``) and copies the model it wrote back.

This module is the training code's one door to the platform clients (``textclf.platform``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from textclf.encoding import TRAINING_FILE
from textclf.platform import storage
from textclf.platform.trainjob import TrainJobRequest, TrainJobSettings
from textclf.platform.vertex import vertex_topology
from textclf.settings import require_at_least, setting
from textclf.train import checkpoint
from textclf.train.settings import TrainSettings

log = logging.getLogger(__name__)

# The launches train_step chooses between (see the module's docstring).
ONE_PROCESS, TORCHRUN, VERTEX_POOLS, TRAINJOB = "one process", "torchrun", "Vertex worker pools", "TrainJob"


@dataclass
class TrainLaunchSettings:
    """Where the train step runs: machines and GPUs (one training process per GPU)."""

    num_nodes: int = setting(
        1,
        "Machines that train together. 1: the train task itself; more: a Kubeflow "
        "Trainer TrainJob (kubeflow target) or the replicas of a Vertex CustomJob (vertex "
        "target), each node running gpus_per_node processes.",
    )
    gpus_per_node: int = setting(
        1,
        "GPUs per machine, one data-parallel training process (torchrun) each; the "
        "effective batch is batch_size x grad_accum_steps x num_nodes x gpus_per_node. "
        "On a machine without GPUs (locally) it is the number of CPU processes (gloo).",
    )

    def __post_init__(self):
        require_at_least(self, 1, "num_nodes", "gpus_per_node")


@dataclass(frozen=True)
class Topology:
    """The training processes of one launch, as torchrun needs to know them on this machine."""

    nodes: int = 1
    processes_per_node: int = 1
    node_rank: int = 0
    master: tuple[str, int] | None = None  # (address, port) of node 0; None on one machine

    @property
    def processes(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def is_main_node(self) -> bool:
        return self.node_rank == 0


def topology(launch: TrainLaunchSettings, env: Mapping[str, str] | None = None) -> Topology:
    """This task's share of the launch: one machine, or (on Vertex) one replica of several.

    Raises:
        ValueError: ``num_nodes`` > 1 where only one machine exists (locally: on Kubeflow several
            nodes are a TrainJob, see :func:`launch_kind`), or a Vertex cluster whose size is not
            ``num_nodes``.
    """
    env = os.environ if env is None else env
    if env.get("CLUSTER_SPEC"):
        nodes, node_rank, master = vertex_topology(env["CLUSTER_SPEC"])
        if nodes != launch.num_nodes:
            raise ValueError(f"num_nodes is {launch.num_nodes} but the Vertex CustomJob has {nodes} replicas")
        return Topology(nodes, launch.gpus_per_node, node_rank, master if nodes > 1 else None)
    if launch.num_nodes > 1:
        raise ValueError(
            f"num_nodes={launch.num_nodes} needs a Kubeflow TrainJob or a Vertex CustomJob (compile "
            "the pipeline for kubeflow or vertex); this task runs on one machine"
        )
    return Topology(1, launch.gpus_per_node)


def torchrun_options(topo: Topology) -> list[str]:
    options = [f"--nnodes={topo.nodes}", f"--nproc_per_node={topo.processes_per_node}"]
    if topo.master is None:
        return [*options, "--standalone"]  # a local rendezvous on a free port
    address, port = topo.master
    return [*options, f"--node_rank={topo.node_rank}", f"--master_addr={address}", f"--master_port={port}"]


def settings_arguments(*settings) -> list[str]:
    """``--name value`` for every field of the settings dataclasses, as ``python -m textclf.train`` parses them."""
    return [arg for s in settings for name, value in dataclasses.asdict(s).items() for arg in (f"--{name}", str(value))]


def cli_arguments(tokenized: str, output: str, metadata: dict, checkpoints: str, *settings) -> list[str]:
    """The arguments of ``python -m textclf.train`` (no secret among them: W&B's key comes from the environment)."""
    return [
        "--tokenized",
        tokenized,
        "--output",
        output,
        "--checkpoints",
        checkpoints,
        "--metadata",
        json.dumps(metadata, sort_keys=True, default=str),
        *settings_arguments(*settings),
    ]


def train_tracked(
    tokenized: str,
    output: str,
    settings: TrainSettings,
    tracking_settings,
    metadata: dict,
    checkpoints: str | None = None,
) -> dict | None:
    """:func:`textclf.train.train` with W&B tracking on rank 0 (the config: settings and the data's fingerprint)."""
    from textclf import tracking
    from textclf.train.distributed import ranks_from_env
    from textclf.train.loop import train

    if not ranks_from_env().is_main:
        return train(tokenized, output, settings, metadata, checkpoints=checkpoints)
    config = {
        **dataclasses.asdict(settings),
        "data_fingerprint": metadata.get("fingerprint"),
        "data_source": metadata.get("source"),
        "tuning": metadata.get("tuning"),
    }
    with tracking.start(tracking_settings, job_type="train", config=config) as run:
        return train(tokenized, output, settings, metadata, log_metrics=run.log, checkpoints=checkpoints)


def checkpoints_for(model_path: str, model_uri: str) -> str:
    """Checkpoints beside the Model artifact where they outlive the task: its URI on object storage
    (``gs://``, ``s3://``) when it has one (on Kubeflow the local path is a folder uploaded only when the
    task ends), else its path."""
    return checkpoint.checkpoint_location_for(model_uri if storage.is_shared(model_uri) else model_path)


def train_in_task(
    tokenized: str,
    model_path: str,
    model_uri: str,
    metadata: dict,
    settings: TrainSettings,
    launch: TrainLaunchSettings,
    tracking_settings,
    env: Mapping[str, str] | None = None,
) -> dict | None:
    """The train task's own training, in this process or through torchrun on this machine's GPUs
    (and, in a Vertex CustomJob, on every replica).

    Returns:
        ``training.json``'s content on the machine that wrote the model; None on the other
        replicas of a Vertex CustomJob, which must leave the task's outputs to the primary.
    """
    topo = topology(launch, env)
    checkpoints = checkpoints_for(model_path, model_uri)
    if topo.processes == 1:
        return train_tracked(tokenized, model_path, settings, tracking_settings, metadata, checkpoints)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *torchrun_options(topo),
        "-m",
        "textclf.train",
        *cli_arguments(tokenized, model_path, metadata, checkpoints, settings, tracking_settings),
    ]
    log.info(
        "starting %d training processes on node %d of %d: %s",
        topo.processes_per_node,
        topo.node_rank,
        topo.nodes,
        " ".join(command[:8]),
    )
    subprocess.run(command, check=True)
    if not topo.is_main_node:
        return None
    return json.loads((Path(model_path) / TRAINING_FILE).read_text())


def launch_kind(launch: TrainLaunchSettings, env: Mapping[str, str] | None = None) -> str:
    """Which launch trains here: :data:`ONE_PROCESS`, :data:`TORCHRUN`, :data:`VERTEX_POOLS` or :data:`TRAINJOB`.

    A Vertex CustomJob replica knows itself by ``CLUSTER_SPEC``; a Kubernetes pod (Kubeflow) by
    ``KUBERNETES_SERVICE_HOST``, which the kubelet sets in every pod and the Kubernetes client's
    in-cluster configuration reads.

    Raises:
        ValueError: ``num_nodes`` > 1 on a machine that is neither (the message says what would run it).
    """
    env = os.environ if env is None else env
    if env.get("CLUSTER_SPEC"):
        return VERTEX_POOLS
    if launch.num_nodes > 1 and env.get("KUBERNETES_SERVICE_HOST"):
        return TRAINJOB
    return TORCHRUN if topology(launch, env).processes > 1 else ONE_PROCESS


class Located(Protocol):
    """Where an artifact is: its local path and its URI (a kfp artifact is one)."""

    path: str
    uri: str


@dataclass(frozen=True)
class TrainJobTarget:
    """What a TrainJob needs besides the training settings: its own settings, the GPU pool's GKE
    accelerator type (empty: CPU nodes) and the trainer image its pods run."""

    job: TrainJobSettings
    gpu_type: str
    image: str
    client: Any = None  # a kubeflow TrainerClient; None: the pod's own (its service account and namespace)
    poll_seconds: int = 10


def train_step(
    tokenized: Located,
    model: Located,
    metadata: dict,
    settings: TrainSettings,
    launch: TrainLaunchSettings,
    tracking_settings,
    cluster: TrainJobTarget,
    env: Mapping[str, str] | None = None,
) -> dict | None:
    """Train the train step's model with the launch :func:`launch_kind` picks, and leave it at ``model.path``.

    Returns:
        ``training.json``'s content; None on a worker replica of a Vertex CustomJob, which must
        leave the step's outputs to the primary.
    """
    kind = launch_kind(launch, env)
    log.info("training launch: %s (%d node(s) x %d process(es))", kind, launch.num_nodes, launch.gpus_per_node)
    if kind == TRAINJOB:
        return run_trainjob(
            tokenized.uri,
            model.uri,
            model.path,
            metadata,
            settings,
            launch,
            cluster.job,
            tracking_settings,
            cluster.gpu_type,
            cluster.image,
            cluster.client,
            cluster.poll_seconds,
        )
    return train_in_task(tokenized.path, model.path, model.uri, metadata, settings, launch, tracking_settings, env)


def new_request(
    tokenized_uri: str,
    model_uri: str,
    metadata: dict,
    settings: TrainSettings,
    launch: TrainLaunchSettings,
    job: TrainJobSettings,
    tracking_settings,
    gpu_type: str,
    image: str,
) -> TrainJobRequest:
    """The TrainJob of one train step: ``num_nodes`` pods running ``torchrun -m textclf.train`` on the artifacts' URIs.

    Raises:
        ValueError: an artifact is not on object storage (the TrainJob's pods share no volume with the step).
    """
    for what, uri in (("tokenized dataset", tokenized_uri), ("model", model_uri)):
        if not storage.is_shared(uri):
            raise ValueError(
                f"num_nodes > 1 runs a TrainJob whose pods read and write the artifacts on object storage, "
                f"but the {what} is at {uri!r}: submit the run with a pipeline root on object storage "
                "(gs://, s3://)"
            )
    command = [
        "torchrun",
        f"--nproc_per_node={launch.gpus_per_node}",
        "-m",
        "textclf.train",
        *cli_arguments(
            tokenized_uri,
            model_uri,
            metadata,
            checkpoint.checkpoint_location_for(model_uri),
            settings,
            tracking_settings,
        ),
    ]
    return TrainJobRequest(
        name=f"textclf-train-{uuid.uuid4().hex[:8]}",
        image=image,
        command=command,
        num_nodes=launch.num_nodes,
        gpus_per_node=launch.gpus_per_node,
        gpu_type=gpu_type,
        service_account=job.trainjob_service_account,
        runtime=job.trainjob_runtime,
        timeout_seconds=max(1, round(job.trainjob_timeout_hours * 3600)),
    )


def run_trainjob(
    tokenized_uri: str,
    model_uri: str,
    model_path: str,
    metadata: dict,
    settings: TrainSettings,
    launch: TrainLaunchSettings,
    job: TrainJobSettings,
    tracking_settings,
    gpu_type: str,
    image: str,
    client=None,
    poll_seconds: int = 10,
) -> dict:
    """Train on ``launch.num_nodes`` nodes as a TrainJob and copy the model it wrote to ``model_path``.

    Returns:
        ``training.json``'s content.
    """
    from textclf.platform import trainjob

    request = new_request(tokenized_uri, model_uri, metadata, settings, launch, job, tracking_settings, gpu_type, image)
    trainjob.run(request, client, poll_seconds)
    with tempfile.TemporaryDirectory(prefix="trainjob-model-") as tmp:
        shutil.copytree(storage.localize(model_uri, tmp), model_path, dirs_exist_ok=True)
    return json.loads((Path(model_path) / TRAINING_FILE).read_text())
