"""What ingest knows about its rows without keeping them: fingerprint, duplicates, lengths, bad rows.

Per kept row the ledger holds five numbers (21 bytes: the 64-bit text key, split, label, words,
characters), never the text: 1M rows cost 21 MB, 10M rows 210 MB. Counts, duplicates, leakage and
length statistics are computed from these on every row; the data card's example texts come from a
seeded sample (the rows with the smallest sample numbers, a few per class).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from textclf.data.splits import SPLITS

BAD_ROWS_KEPT = 1000  # listed in the result and the card; all of them are counted
EXAMPLES_PER_CLASS = 3
EXAMPLE_CHARS = 300


class Fingerprint:
    """sha256 of the label names, the row count and the sum (mod 2**256) of each row's BLAKE2b-256
    of (split, label, text).

    The sum is a multiset hash: the same rows give the same fingerprint whatever their order,
    chunking or sharding, and any change of a text, a label, a split assignment (e.g. another seed),
    a row more or less, or the label names changes it. Memory: one integer.
    """

    def __init__(self):
        self.rows = 0
        self.total = 0

    def add(self, splits, labels, texts) -> None:
        total = self.total
        for split, label, text in zip(splits, labels, texts):
            digest = hashlib.blake2b(f"{split}\x1f{label}\x1f{text}".encode(), digest_size=32).digest()
            total += int.from_bytes(digest, "big")
            self.rows += 1
        self.total = total % (1 << 256)

    def hexdigest(self, label_names: list[str]) -> str:
        digest = hashlib.sha256(json.dumps(label_names).encode())
        digest.update(b"\x1e" + self.rows.to_bytes(8, "big") + self.total.to_bytes(32, "big"))
        return digest.hexdigest()


class BadRows:
    """Rows left out: every one counted by reason, the first ``BAD_ROWS_KEPT`` listed."""

    def __init__(self, keep: int = BAD_ROWS_KEPT):
        self.keep = keep
        self.count = 0
        self.by_reason: Counter = Counter()
        self.listed: list[dict] = []

    def add(self, file: str | None, row: int, reason: str, value) -> None:
        self.count += 1
        self.by_reason[reason] += 1
        if len(self.listed) < self.keep:
            entry = {"row": row, "reason": reason, "value": repr(value)[:80]}
            if file is not None:
                entry = {"file": file, **entry}
            self.listed.append(entry)


@dataclass
class RowStats:
    """Per kept row: split code, label id, words and characters (arrays), plus example texts per class."""

    splits: np.ndarray
    labels: np.ndarray
    words: np.ndarray
    chars: np.ndarray
    examples: dict[int, list[str]] = field(default_factory=dict)

    def counts(self, num_labels: int) -> np.ndarray:
        """Rows per (label, split): shape (num_labels, 3), splits in ``SPLITS`` order."""
        flat = self.labels.astype(np.int64) * len(SPLITS) + self.splits
        return np.bincount(flat, minlength=num_labels * len(SPLITS)).reshape(num_labels, len(SPLITS))


class RowLedger:
    """Collects the numbers of kept rows chunk by chunk; answers counts, duplicates and lengths."""

    def __init__(self):
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in ("keys", "splits", "labels", "words", "chars")}
        self._examples: dict[int, list[tuple[float, int, str, int]]] = {}
        self._seen = 0

    def add(self, keys, splits, labels, words, chars, draws, texts) -> None:
        """One chunk's kept rows (numpy arrays, ``texts`` a list); ``draws`` rank rows for the examples."""
        for name, values, dtype in (
            ("keys", keys, np.uint64),
            ("splits", splits, np.int8),
            ("labels", labels, np.int32),
            ("words", words, np.int32),
            ("chars", chars, np.int64),
        ):
            self._parts[name].append(np.asarray(values, dtype=dtype))
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            heap = self._examples.setdefault(int(label), [])
            for i in rows[np.argsort(draws[rows], kind="stable")]:
                # -draw: a max-heap of the smallest draws; ties broken by arrival, so the result is deterministic
                item = (-float(draws[i]), -(self._seen + int(i)), texts[i][:EXAMPLE_CHARS], int(keys[i]))
                if len(heap) == EXAMPLES_PER_CLASS and item <= heap[0]:
                    break  # rows come in draw order: none after this one gets in either
                if any(kept[3] == item[3] for kept in heap):  # a duplicate of a kept example
                    continue
                if len(heap) < EXAMPLES_PER_CLASS:
                    heapq.heappush(heap, item)
                else:
                    heapq.heapreplace(heap, item)
        self._seen += len(keys)

    def _array(self, name: str) -> np.ndarray:
        parts = self._parts[name]
        if len(parts) != 1:  # joined once, so the chunks' arrays are not held twice again
            joined = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            self._parts[name] = parts = [joined]
        return parts[0]

    @property
    def rows(self) -> int:
        return sum(len(part) for part in self._parts["keys"])

    def stats(self) -> RowStats:
        examples = {label: [item[2] for item in sorted(heap, reverse=True)] for label, heap in self._examples.items()}
        return RowStats(
            self._array("splits"), self._array("labels"), self._array("words"), self._array("chars"), examples
        )

    def duplicates(self) -> dict[str, int]:
        """Duplicate counts over normalised texts (by their keys).

        ``duplicate_rows``: rows whose text already appeared in an earlier row; ``cross_split_texts``:
        distinct texts present in more than one split (leakage); ``conflicting_label_texts``: distinct
        texts present with more than one label. Chunk boundaries do not matter: all keys are compared.
        """
        keys = self._array("keys")
        if not len(keys):
            return {"duplicate_rows": 0, "cross_split_texts": 0, "conflicting_label_texts": 0}
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))

        def groups_with_several(values: np.ndarray) -> int:
            ordered = values[order]
            return int(np.count_nonzero(np.minimum.reduceat(ordered, starts) != np.maximum.reduceat(ordered, starts)))

        return {
            "duplicate_rows": int(len(keys) - len(starts)),
            "cross_split_texts": groups_with_several(self._array("splits")),
            "conflicting_label_texts": groups_with_several(self._array("labels")),
        }
