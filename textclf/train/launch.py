"""How many training processes run where, and how they are started.

One process (``num_nodes`` = ``gpus_per_node`` = 1) trains inside the calling process: the path
``make run`` takes, unchanged. More processes are started by ``torchrun`` (PyTorch's launcher,
``torch.distributed.run``), one per GPU, running ``python -m textclf.train`` (the command line in
``textclf/train/__main__.py``):

* on one machine (the train task's own pod, or locally on CPU with gloo): ``torchrun --standalone``;
* on the replicas of a Vertex AI CustomJob: ``--nnodes/--node_rank/--master_addr`` from the
  ``CLUSTER_SPEC`` Vertex sets on each replica;
* on the nodes of a Kubeflow Trainer TrainJob (``textclf.train.trainjob``): the TrainJob's runtime
  sets ``PET_NNODES``, ``PET_NODE_RANK``, ``PET_MASTER_ADDR`` and ``PET_MASTER_PORT``, which torchrun reads.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from textclf.platform import storage
from textclf.encoding import TRAINING_FILE
from textclf.settings import require_at_least, setting
from textclf.train import checkpoint
from textclf.train.settings import TrainSettings

log = logging.getLogger(__name__)

# Each training process (one per GPU) gets this much of its node: requests of the TrainJob's pods.
CPU_PER_PROCESS = 4
MEMORY_GB_PER_PROCESS = 16


# Vertex AI machine types per accelerator and GPU count: each accelerator comes attached to its
# machine family, sized by the GPU count (Google Cloud's GPU machine types; a2/a3 name the count).
VERTEX_MACHINE_TYPES = {
    "NVIDIA_L4": {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
    "NVIDIA_TESLA_T4": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_A100": {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g", 16: "a2-megagpu-16g"},
    "NVIDIA_A100_80GB": {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"},
    "NVIDIA_H100_80GB": {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g", 8: "a3-highgpu-8g"},
}


def vertex_machine_type(accelerator_type: str, gpus: int) -> str:
    """The Vertex AI machine type that carries ``gpus`` GPUs of ``accelerator_type``.

    Raises:
        ValueError: no machine carries that many of them (the message lists the counts that exist).
    """
    counts = VERTEX_MACHINE_TYPES.get(accelerator_type)
    if counts is None:
        raise ValueError(f"no Vertex machine table for accelerator {accelerator_type!r}; known: {sorted(VERTEX_MACHINE_TYPES)}")
    if gpus not in counts:
        raise ValueError(f"gpus_per_node={gpus}: Vertex machines carry {sorted(counts)} {accelerator_type} GPUs")
    return counts[gpus]


@dataclass
class TrainLaunchSettings:
    """Where the train step runs: machines and GPUs (one training process per GPU)."""

    num_nodes: int = setting(1, "Machines that train together. 1: the train task itself; more: a Kubeflow "
                             "Trainer TrainJob (kubeflow target) or the replicas of a Vertex CustomJob (vertex "
                             "target), each node running gpus_per_node processes.")
    gpus_per_node: int = setting(1, "GPUs per machine, one data-parallel training process (torchrun) each; the "
                                 "effective batch is batch_size x grad_accum_steps x num_nodes x gpus_per_node. "
                                 "On a machine without GPUs (locally) it is the number of CPU processes (gloo).")

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


def vertex_topology(cluster_spec: str) -> tuple[int, int, tuple[str, int]]:
    """(nodes, this node's rank, node 0's address and port) from Vertex AI's ``CLUSTER_SPEC``.

    Vertex puts the primary replica in ``workerpool0`` and the others in ``workerpool1``; the
    primary is node 0.
    """
    spec = json.loads(cluster_spec)
    cluster, task = spec["cluster"], spec["task"]
    primary, workers = cluster.get("workerpool0", []), cluster.get("workerpool1", [])
    if len(primary) != 1:
        raise ValueError(f"CLUSTER_SPEC: workerpool0 must hold exactly the primary replica, got {primary}")
    pools = {"workerpool0": 0, "workerpool1": 1}
    if task["type"] not in pools:
        raise ValueError(f"CLUSTER_SPEC: this replica is in {task['type']}; training runs in workerpool0 and workerpool1 only")
    node_rank = 0 if task["type"] == "workerpool0" else 1 + int(task["index"])
    host, _, port = primary[0].rpartition(":")
    return 1 + len(workers), node_rank, (host, int(port))


def topology(launch: TrainLaunchSettings, env: Mapping[str, str] | None = None) -> Topology:
    """This task's share of the launch: one machine, or (on Vertex) one replica of several.

    Raises:
        ValueError: ``num_nodes`` > 1 where only one machine exists (locally, or a single pod:
            on Kubeflow several nodes are a TrainJob, started by ``train_trainjob_op``), or a Vertex
            cluster whose size is not ``num_nodes``.
    """
    env = os.environ if env is None else env
    if env.get("CLUSTER_SPEC"):
        nodes, node_rank, master = vertex_topology(env["CLUSTER_SPEC"])
        if nodes != launch.num_nodes:
            raise ValueError(f"num_nodes is {launch.num_nodes} but the Vertex CustomJob has {nodes} replicas")
        return Topology(nodes, launch.gpus_per_node, node_rank, master if nodes > 1 else None)
    if launch.num_nodes > 1:
        raise ValueError(f"num_nodes={launch.num_nodes} needs a Kubeflow TrainJob or a Vertex CustomJob (compile "
                         "the pipeline for kubeflow or vertex); this task runs on one machine")
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
    return ["--tokenized", tokenized, "--output", output, "--checkpoints", checkpoints,
            "--metadata", json.dumps(metadata, sort_keys=True, default=str), *settings_arguments(*settings)]


def train_tracked(tokenized: str, output: str, settings: TrainSettings, tracking_settings, metadata: dict,
                  checkpoints: str | None = None) -> dict | None:
    """:func:`textclf.train.train` with W&B tracking on rank 0 (the config: settings and the data's fingerprint)."""
    from textclf import tracking
    from textclf.train.distributed import ranks_from_env
    from textclf.train.loop import train

    if not ranks_from_env().is_main:
        return train(tokenized, output, settings, metadata, checkpoints=checkpoints)
    config = {**dataclasses.asdict(settings), "data_fingerprint": metadata.get("fingerprint"),
              "data_source": metadata.get("source"), "tuning": metadata.get("tuning")}
    with tracking.start(tracking_settings, job_type="train", config=config) as run:
        return train(tokenized, output, settings, metadata, log_metrics=run.log, checkpoints=checkpoints)


def checkpoints_for(model_path: str, model_uri: str) -> str:
    """Checkpoints beside the Model artifact where they outlive the task: its URI on object storage
    (``gs://``, ``s3://``) when it has one (on Kubeflow the local path is a folder uploaded only when the
    task ends), else its path."""
    return checkpoint.checkpoint_location_for(model_uri if storage.is_shared(model_uri) else model_path)


def train_in_task(tokenized: str, model_path: str, model_uri: str, metadata: dict, settings: TrainSettings,
                  launch: TrainLaunchSettings, tracking_settings, env: Mapping[str, str] | None = None) -> dict | None:
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
    command = [sys.executable, "-m", "torch.distributed.run", *torchrun_options(topo), "-m", "textclf.train",
               *cli_arguments(tokenized, model_path, metadata, checkpoints, settings, tracking_settings)]
    log.info("starting %d training processes on node %d of %d: %s", topo.processes_per_node, topo.node_rank, topo.nodes,
             " ".join(command[:8]))
    subprocess.run(command, check=True)
    if not topo.is_main_node:
        return None
    return json.loads((Path(model_path) / TRAINING_FILE).read_text())
