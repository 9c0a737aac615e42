"""Data-parallel training on ``torch.distributed``: which rank this process is, and the few collectives the loop needs.

A process started by ``torchrun`` (or by a Kubeflow TrainJob or a Vertex CustomJob, which run
torchrun) finds ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in
its environment. With ``WORLD_SIZE`` absent or 1 nothing is initialised and every collective
below returns its input: world size 1 is the single-process path, unchanged.

Gradients are synchronised by ``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs); this
module only reduces the loop's metrics and carries the per-rank state of checkpoints.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranks:
    """Where this process sits among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the model directory, training.json, profile.json, checkpoints and tracking."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks_from_env(env=None) -> Ranks:
    """The ranks torchrun put in the environment (a single process when there are none)."""
    env = os.environ if env is None else env
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def start(ranks: Ranks, timeout_minutes: float = 60):
    """Join the process group (when there is more than one process) and pick this rank's device.

    The timeout bounds how long a rank waits for the others at a collective: long enough for
    rank 0 to write a checkpoint of a large model to Cloud Storage.
    """
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(ranks.local_rank)
    device = torch.device("cuda", ranks.local_rank) if cuda else torch.device("cpu")
    if ranks.distributed and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(
            backend="nccl" if cuda else "gloo",
            rank=ranks.rank,
            world_size=ranks.world_size,
            timeout=datetime.timedelta(minutes=timeout_minutes),
            device_id=device if cuda else None,
        )
    return device


def stop() -> None:
    import torch

    if _initialised():
        torch.distributed.destroy_process_group()


def _initialised() -> bool:
    import torch

    return torch.distributed.is_available() and torch.distributed.is_initialized()


def sum_across_ranks(values: list[float], device) -> list[float]:
    """Element-wise sums over all ranks (float64, so counts stay exact)."""
    import torch

    if not _initialised():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def any_rank(flag: bool, device) -> bool:
    """True when ``flag`` is true on some rank: keeps a decision (write a checkpoint now) the same everywhere."""
    return bool(sum_across_ranks([float(flag)], device)[0]) if _initialised() else flag


def gather_objects(obj) -> list:
    """``obj`` of every rank, in rank order (picklable objects; for small things such as RNG states)."""
    import torch

    if not _initialised():
        return [obj]
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    import torch

    if _initialised():
        torch.distributed.barrier()
