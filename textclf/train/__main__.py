"""``python -m textclf.train``: one training process, as ``torchrun`` starts them.

    torchrun --standalone --nproc_per_node 2 -m textclf.train --tokenized DIR --output DIR [--epochs 1 ...]

Every rank runs this; rank 0 tracks on W&B and writes the model. ``--tokenized`` and ``--output``
may be remote URIs such as ``gs://`` (a TrainJob's pods see no pipeline volume): the tokenized splits are
downloaded once per node, and rank 0 writes the model to a local folder and uploads it.
Settings are the fields of ``TrainSettings`` and ``TrackingSettings``; ``--help`` lists them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from textclf.platform import storage
from textclf.settings import setting
from textclf.tracking import TrackingSettings
from textclf.train import distributed
from textclf.train.launch import checkpoints_for, train_tracked
from textclf.train.settings import TrainSettings

log = logging.getLogger("textclf.train")


@dataclass
class TrainPaths:
    """What to train on and where the results go."""

    tokenized: str = setting("", "The tokenize step's output: a folder or remote prefix (gs://...).")
    output: str = setting("", "The Model directory to write: a folder or remote prefix (gs://...).")
    checkpoints: str = setting("", "Where checkpoints go (folder or remote prefix); empty: <output>.checkpoints.")
    metadata: str = setting(
        "{}", "JSON of the datasets' metadata: labels, fingerprint, source, max_length, truncation."
    )

    def __post_init__(self):
        if not self.tokenized or not self.output:
            raise ValueError("--tokenized and --output are required")


def node_local_copy(uri: str, ranks: distributed.Ranks) -> str:
    """``uri`` on this node's disk: downloaded by the node's first process while the others wait."""
    if not storage.is_remote(uri):
        return uri
    dest = Path(tempfile.gettempdir(), "textclf-train", hashlib.sha256(uri.encode()).hexdigest()[:16])
    local = storage.localize(uri, str(dest)) if ranks.local_rank == 0 else None
    found = [path for path in distributed.gather_objects(local) if path]
    return found[0]  # the same path on every node: it depends only on the URI


def main(argv=None) -> None:
    from textclf.settings import SettingsParser

    ranks = distributed.ranks_from_env()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank {ranks.rank} %(levelname)s %(name)s: %(message)s")
    parser = SettingsParser((TrainPaths, TrainSettings, TrackingSettings), description=__doc__)
    paths, settings, tracking_settings = parser.parse_args_into_dataclasses(argv)
    distributed.start(ranks)  # joined early: the download below waits on it; train() keeps the group
    tokenized = node_local_copy(paths.tokenized, ranks)
    output = tempfile.mkdtemp(prefix="model-") if storage.is_remote(paths.output) else paths.output
    checkpoints = paths.checkpoints or checkpoints_for(output, paths.output)
    summary = train_tracked(tokenized, output, settings, tracking_settings, json.loads(paths.metadata), checkpoints)
    if summary is not None and output != paths.output:
        storage.upload(output, paths.output)
    if summary is not None:
        log.info("model written to %s", paths.output)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the DataLoader forks workers
    main()
