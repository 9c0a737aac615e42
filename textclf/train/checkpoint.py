"""Checkpoints beside the Model directory: the best weights so far and a resume point.

They live at ``<model>.checkpoints`` (same artifact prefix), not inside the model directory,
which is exactly what the server downloads. Writes are atomic (write, then rename), so a task
killed mid-write keeps the previous checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

RESUME_FILE = "last.pt"
BEST_FILE = "best.pt"


def checkpoint_dir_for(output_dir: str) -> Path:
    return Path(str(output_dir).rstrip("/") + ".checkpoints")


def _save_atomically(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_best(ckpt_dir: Path, model) -> None:
    _save_atomically(model.state_dict(), ckpt_dir / BEST_FILE)


def load_best(ckpt_dir: Path, model, device) -> bool:
    """Load the best weights into ``model``; False when there are none."""
    import torch

    path = ckpt_dir / BEST_FILE
    if not path.exists():
        return False
    model.load_state_dict(torch.load(path, map_location=device))
    return True


def save_resume_point(ckpt_dir: Path, model, optimizer, scheduler, state: dict) -> None:
    state_dicts = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    _save_atomically({**state_dicts, "state": state}, ckpt_dir / RESUME_FILE)


def load_resume_point(ckpt_dir: Path, model, optimizer, scheduler, device) -> dict | None:
    """Restore model, optimizer and scheduler from the resume point; its loop state, or None."""
    import torch

    path = ckpt_dir / RESUME_FILE
    if not path.exists():
        return None
    saved = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    log.info("resuming from %s: epoch %d, step %d", ckpt_dir, saved["state"]["epoch"], saved["state"]["step"])
    return saved["state"]
