"""Checkpoints beside the Model artifact: the best weights so far and a resume point.

They live at ``<model>.checkpoints``: a local folder, or (in the cloud) the remote prefix
(``gs://``...) of the Model artifact's URI, so that they outlive the pod or VM that wrote them. Not
inside the model directory, which is exactly what the server downloads.

Writes are atomic (``textclf.platform.storage.atomic_write``): a local file is written under a
temporary name and renamed; an object appears only once its upload is complete. A task killed
mid-write keeps the previous checkpoint.

The resume point holds everything an interrupted run needs to go on as if it had never
stopped: model, optimizer, schedule and gradient scaler, the loop's position (epoch, optimizer
step, batch within the epoch) and, per rank, the random number generators (Python, NumPy,
torch, CUDA) and the epoch's running loss.

Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint lives in a bucket that
more identities can write than should run code in a training pod, and a full unpickler runs
whatever a tampered file asks for. Everything saved is therefore tensors and plain containers
(NumPy's generator state is stored as a tensor, see :func:`rng_states`); a file holding anything
else is refused with :class:`UnsafeCheckpoint`.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from textclf.platform import storage

log = logging.getLogger(__name__)

RESUME_FILE = "last.pt"
BEST_FILE = "best.pt"
SUFFIX = ".checkpoints"


class UnsafeCheckpoint(ValueError):
    """A checkpoint holds objects other than tensors and plain containers (a pickled payload)."""


def checkpoint_dir_for(output: str) -> Path:
    """The local checkpoint folder of a local model directory."""
    return Path(checkpoint_location_for(str(output)))


def checkpoint_location_for(output: str) -> str:
    """Where the checkpoints of the model at ``output`` (a folder or remote prefix) go."""
    return str(output).rstrip("/") + SUFFIX


class Checkpoints:
    """The checkpoint files at one location: a local folder or a remote prefix (``gs://``...)."""

    def __init__(self, location: str):
        self.location = str(location).rstrip("/")

    def __repr__(self) -> str:
        return f"Checkpoints({self.location!r})"

    def _uri(self, name: str) -> str:
        return storage.join(self.location, name)

    def save(self, name: str, obj) -> None:
        import torch

        with storage.atomic_write(self._uri(name)) as handle:
            torch.save(obj, handle)

    def load(self, name: str, device):
        """The saved object, or None when there is none."""
        try:
            with storage.open(self._uri(name), "rb") as handle:
                return _load_weights_only(handle, self._uri(name), device)
        except FileNotFoundError:
            return None

    def remove(self) -> None:
        """Delete every checkpoint (once the model is saved nothing needs them)."""
        storage.delete(self.location)


def _load_weights_only(path: Path, where: str, device):
    """``torch.load`` that never runs code from the file.

    Raises:
        UnsafeCheckpoint: the file asks for a class or function to be rebuilt (it was not written
            by this module, or someone changed it).
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"refusing to load checkpoint {where}: it holds objects other than tensors and plain containers, which "
            f"only a tampered or foreign file does ({str(error).splitlines()[0]}); delete it to start over"
        ) from None


def save_best(store: Checkpoints, model) -> None:
    store.save(BEST_FILE, model.state_dict())


def load_best(store: Checkpoints, model, device) -> bool:
    """Load the best weights into ``model``; False when there are none."""
    state = store.load(BEST_FILE, device)
    if state is None:
        return False
    model.load_state_dict(state)
    return True


def rng_states() -> dict:
    """The states of every random number generator training draws from (dropout: torch/CUDA)."""
    import numpy as np
    import torch

    # NumPy's state as plain values and a tensor: weights_only loading refuses NumPy arrays.
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"] = {
        **numpy_state["state"],
        "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
    }
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    import numpy as np
    import torch

    random.setstate(states["python"])
    numpy_state = states["numpy"]
    key = numpy_state["state"]["key"].cpu().numpy().astype(np.uint32)
    np.random.set_state({**numpy_state, "state": {**numpy_state["state"], "key": key}})
    torch.set_rng_state(states["torch"].cpu())
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])


def save_resume_point(store: Checkpoints, run, rank_states: list[dict]) -> None:
    """Write ``run``'s resume point; ``rank_states`` holds each rank's RNG states and running loss."""
    store.save(
        RESUME_FILE,
        {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "state": run.state,
            "ranks": rank_states,
        },
    )
    log.info(
        "checkpoint: epoch %d, step %d, batch %d -> %s",
        run.state["epoch"],
        run.state["step"],
        run.state["batch"],
        store.location,
    )


def load_resume_point(store: Checkpoints, run) -> dict | None:
    """Restore ``run``'s model, optimizer, schedule and scaler; returns the loop state and this
    rank's saved state (``{"state": ..., "rank": ...}``), or None when there is no resume point.

    Raises:
        ValueError: the resume point was written by a different number of processes (its
            batches were cut for that many ranks).
    """
    saved = store.load(RESUME_FILE, run.device)
    if saved is None:
        return None
    world_size = run.ranks.world_size
    if len(saved["ranks"]) != world_size:
        raise ValueError(
            f"the resume point in {store.location} was written by {len(saved['ranks'])} training "
            f"processes and this run has {world_size}: rerun with the same num_nodes x gpus_per_node, "
            "or delete it to start over"
        )
    run.model.load_state_dict(saved["model"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.scheduler.load_state_dict(saved["scheduler"])
    run.scaler.load_state_dict(saved["scaler"])
    state = saved["state"]
    log.info(
        "resuming from %s: epoch %d, step %d, batch %d", store.location, state["epoch"], state["step"], state["batch"]
    )
    return {"state": state, "rank": saved["ranks"][run.ranks.rank]}
