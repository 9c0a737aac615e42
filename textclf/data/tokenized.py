"""The tokenized dataset on disk: ``datasets.save_to_disk``'s layout, written batch by batch and read
back in batches without memory-mapping.

Layout (what ``datasets.load_from_disk`` reads): ``dataset_dict.json`` naming the splits, and per
split a folder with Arrow IPC stream files ``data-00000-of-0000N.arrow`` plus ``state.json`` and
``dataset_info.json``. Columns: ``input_ids`` (lists of int32) and ``attention_mask`` (int8; no padding,
the mask is all ones and the train step pads per batch), ``label`` (int64) and ``text`` (string,
which evaluation and the reference profile read).

``datasets`` would write the same files through ``Dataset.from_dict(...).save_to_disk``, but only
from a dataset it holds in memory or memory-maps whole; writing the Arrow stream ourselves keeps one
batch in memory. ``tests/pipeline/test_tokenize_streaming.py`` checks the files against the
library's own ``save_to_disk``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from datasets.arrow_writer import ArrowWriter

COLUMNS = ("input_ids", "attention_mask", "label", "text")
ARROW_SHARD_ROWS = 100_000  # rows per Arrow file; datasets itself cuts at about 500 MB


def features():
    import datasets

    # The types datasets itself gives these columns (its "optimized" int types for token ids and masks).
    return datasets.Features(
        {
            "input_ids": datasets.List(datasets.Value("int32")),
            "attention_mask": datasets.List(datasets.Value("int8")),
            "label": datasets.Value("int64"),
            "text": datasets.Value("string"),
        }
    )


def encoded_table(input_ids: Sequence[Sequence[int]], labels, texts):
    """An Arrow table of the tokenized columns, built from flat NumPy buffers (no per-token Python objects)."""
    import pyarrow as pa

    lengths = np.fromiter(map(len, input_ids), dtype=np.int64, count=len(input_ids))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(itertools.chain.from_iterable(input_ids), dtype=np.int32, count=int(offsets[-1]))
    offsets = pa.array(offsets)
    return pa.table(
        {
            "input_ids": pa.ListArray.from_arrays(offsets, pa.array(flat)),
            "attention_mask": pa.ListArray.from_arrays(offsets, pa.array(np.ones(len(flat), dtype=np.int8))),
            "label": pa.array(labels).cast(pa.int64()),
            "text": pa.array(texts).cast(pa.string()),
        }
    )


class SplitWriter:
    """Writes one split's folder in ``save_to_disk``'s layout, ``shard_rows`` rows per Arrow file."""

    def __init__(self, folder: str | Path, shard_rows: int = ARROW_SHARD_ROWS):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("data-*.arrow"):
            stale.unlink()
        self.shard_rows = shard_rows
        self.rows = 0
        self._files: list[Path] = []
        self._writer: ArrowWriter | None = None
        self._rows_in_file = 0

    def write(self, table) -> None:
        """Append a table with ``COLUMNS`` (``encoded_table``)."""
        start = 0
        while start < table.num_rows:
            writer = self._writer or self._open_file()
            piece = table.slice(start, self.shard_rows - self._rows_in_file)
            writer.write_table(piece)
            start += piece.num_rows
            self._rows_in_file += piece.num_rows
            self.rows += piece.num_rows
            if self._rows_in_file >= self.shard_rows:
                self._close_file()

    def _open_file(self) -> ArrowWriter:
        from datasets.arrow_writer import ArrowWriter

        self._files.append(self.folder / f"part-{len(self._files):05d}.arrow")
        self._writer = ArrowWriter(features=features(), path=str(self._files[-1]))
        return self._writer

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.finalize()
            self._writer.close()
            self._writer, self._rows_in_file = None, 0

    def close(self, fingerprint_of: str = "") -> None:
        """Close the last file and write ``state.json`` and ``dataset_info.json`` as ``save_to_disk`` does."""
        import datasets
        from datasets.utils.py_utils import asdict  # the library's own, which leaves out unset fields

        if not self._files:  # an empty split is still a readable dataset
            self._open_file().write_table(encoded_table([], [], []))
        self._close_file()
        names = [f"data-{i:05d}-of-{len(self._files):05d}.arrow" for i in range(len(self._files))]
        for path, name in zip(self._files, names):
            path.rename(self.folder / name)
        state: dict[str, Any] = {
            "_data_files": [{"filename": name} for name in names],
            "_fingerprint": hashlib.sha256(
                f"{fingerprint_of}\x1f{self.folder.name}\x1f{self.rows}".encode()
            ).hexdigest()[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": None,
        }
        (self.folder / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        info = asdict(datasets.DatasetInfo(features=features()))
        (self.folder / "dataset_info.json").write_text(json.dumps({key: info[key] for key in sorted(info)}, indent=2))


def write_dataset_dict(folder: str | Path, splits: Sequence[str]) -> None:
    (Path(folder) / "dataset_dict.json").write_text(json.dumps({"splits": list(splits)}))


def split_files(folder: str | Path, split: str) -> list[Path]:
    """The Arrow files of one split of a ``save_to_disk`` folder, in order."""
    split_dir = Path(folder) / split
    state = json.loads((split_dir / "state.json").read_text())
    return [split_dir / entry["filename"] for entry in state["_data_files"]]


def iter_batches(data, columns: Sequence[str], batch_rows: int = 1024, split: str = "test") -> Iterator:
    """Batches (``pyarrow`` record batches or tables) of ``columns`` of one split, in order.

    ``data`` is a tokenized folder (its ``split`` is read file by file with ordinary reads, so what
    is resident is one batch, whatever the split's size) or a ``datasets.Dataset`` (iterated by the
    library, memory-mapped).
    """
    if not isinstance(data, (str, Path)):
        yield from data.select_columns(list(columns)).with_format("arrow").iter(batch_size=batch_rows)
        return
    import pyarrow as pa

    for path in split_files(data, split):
        with pa.OSFile(str(path)) as handle:
            for batch in pa.ipc.open_stream(handle):
                batch = batch.select(list(columns))
                for start in range(0, batch.num_rows, batch_rows):
                    yield batch.slice(start, batch_rows)
