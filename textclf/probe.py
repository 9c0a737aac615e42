"""The model's own probe texts: a seeded sample of its validation split, stored in the Model directory.

Whatever checks a model on a few texts (precision and backend agreement, canary agreement between two
revisions, the drift monitor's sanity probes) uses these, so that an intent model is probed with
intents and a spam model with messages, never with another domain's text. ``probe_texts.jsonl`` holds
one JSON object per line, ``{"text": str, "label": str}`` (the label name of the data, not the model's
prediction), in a stable order.

The sample is the ``PROBE_SIZE`` texts whose seeded hash is smallest: a function of the texts and the
seed only (not of row order or batching), taken in one streaming pass with ``PROBE_SIZE`` texts held.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterable
from pathlib import Path

PROBE_FILE = "probe_texts.jsonl"
PROBE_SIZE = 256


def _rank(text: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=16).digest()


def sample_probe_texts(rows: Iterable[tuple[str, str]], seed: int, size: int = PROBE_SIZE) -> list[dict]:
    """A seeded sample of ``size`` (text, label name) rows, as ``{"text", "label"}`` dicts in hash order.

    Duplicate texts count once (the first label seen is kept)."""
    # heapq is a min-heap; with inverted ranks its top is the largest rank kept, the one to replace.
    heap: list[tuple[bytes, str, str]] = []
    kept: set[bytes] = set()
    for text, label in rows:
        inverted = bytes(255 - b for b in _rank(text, seed))
        if inverted in kept:
            continue
        if len(heap) < size:
            heapq.heappush(heap, (inverted, text, label))
        elif inverted > heap[0][0]:
            kept.discard(heapq.heapreplace(heap, (inverted, text, label))[0])
        else:
            continue
        kept.add(inverted)
    return [{"text": text, "label": label} for _, text, label in sorted(heap, reverse=True)]


def write_probe_texts(model_dir: str | Path, probes: list[dict]) -> Path:
    path = Path(model_dir) / PROBE_FILE
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in probes), encoding="utf-8")
    return path


def read_probe_texts(model_dir: str | Path) -> list[dict]:
    """The Model directory's probe rows (``[]`` when it has none: a model trained before they existed)."""
    path = Path(model_dir) / PROBE_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_probe_texts_at(model_uri: str) -> list[dict]:
    """The probe rows of a Model directory at a local path or URI (``gs://``, ``s3://``...; read through
    ``textclf.platform.storage``); ``[]`` when it has none.

    Raises:
        ValueError: a URI scheme no installed store reads (``pvc://``...).
    """
    from textclf.platform import storage

    try:
        text = storage.read_text(storage.join(model_uri, PROBE_FILE))
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
