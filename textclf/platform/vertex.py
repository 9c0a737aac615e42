"""Vertex AI's side of training: the machine that carries N GPUs, and a CustomJob replica's place.

Vertex attaches each accelerator to its own machine family, sized by the GPU count (Google Cloud's
GPU machine types; a2/a3 name the count), and tells each replica of a CustomJob where it stands
in ``CLUSTER_SPEC`` (JSON: the worker pools' host:port lists and this replica's pool and index).
"""

from __future__ import annotations

import json

# Vertex AI machine types per accelerator and GPU count.
VERTEX_MACHINE_TYPES = {
    "NVIDIA_L4": {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"},
    "NVIDIA_TESLA_T4": {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"},
    "NVIDIA_TESLA_A100": {
        1: "a2-highgpu-1g",
        2: "a2-highgpu-2g",
        4: "a2-highgpu-4g",
        8: "a2-highgpu-8g",
        16: "a2-megagpu-16g",
    },
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
        raise ValueError(
            f"no Vertex machine table for accelerator {accelerator_type!r}; known: {sorted(VERTEX_MACHINE_TYPES)}"
        )
    if gpus not in counts:
        raise ValueError(f"gpus_per_node={gpus}: Vertex machines carry {sorted(counts)} {accelerator_type} GPUs")
    return counts[gpus]


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
        raise ValueError(
            f"CLUSTER_SPEC: this replica is in {task['type']}; training runs in workerpool0 and workerpool1 only"
        )
    node_rank = 0 if task["type"] == "workerpool0" else 1 + int(task["index"])
    host, _, port = primary[0].rpartition(":")
    return 1 + len(workers), node_rank, (host, int(port))
