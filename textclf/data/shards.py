"""The ingested dataset on disk: a folder of Parquet shards, written and read in bounded memory.

Layout: ``{split}-{index:05d}.parquet`` (``train-00000.parquet``, ``validation-00000.parquet``,
``test-00000.parquet``, ...), each with the columns ``text`` (string), ``label`` (int64) and
``split`` (string, the file's split), rows in source order. A row group is cut after
``row_group_rows`` rows or ``row_group_chars`` characters of text, whichever comes first, and a
shard after ``shard_rows`` rows, counted row by row: the files depend only on the rows, never on
how they were read, so the same data gives byte-identical files. ``pd.read_parquet(folder)`` reads
the whole dataset (for small data and tests); the steps read it with :func:`iter_split`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from textclf.data.splits import SPLITS

if TYPE_CHECKING:
    import pyarrow.parquet as pq

SHARD_GLOB = "{split}-*.parquet"


@dataclass(frozen=True)
class Layout:
    """How rows are read from the source and cut into row groups and shards."""

    chunk_rows: int = 5_000  # rows per chunk read from the source: with texts of 1-2 KB, 10 MB
    row_group_rows: int = 10_000
    row_group_chars: int = 32_000_000  # with long texts a row group is cut earlier: its buffer stays small
    shard_rows: int = 250_000


def _schema():
    import pyarrow as pa

    return pa.schema([("text", pa.string()), ("label", pa.int64()), ("split", pa.string())])


@dataclass
class _SplitBuffer:
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    chars: int = 0
    writer: pq.ParquetWriter | None = None  # the file being written
    rows_in_file: int = 0
    files: list[Path] = field(default_factory=list)


class ShardWriter:
    """Writes rows of each split to Parquet shards in ``directory`` (see the module docstring).

    Memory: at most one row group per split is buffered. Use as a context manager: on an
    exception the shards written so far are removed, so a failed ingest leaves no half dataset.
    """

    def __init__(self, directory: str | Path, layout: Layout = Layout()):
        self.directory = Path(directory)
        self.layout = layout
        self._splits = {split: _SplitBuffer() for split in SPLITS}
        if self.directory.is_file():
            raise FileExistsError(f"the dataset output {self.directory} is a file; it must be a folder")
        self.directory.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:  # shards of an earlier run at this path would mix in
            for stale in self.directory.glob(SHARD_GLOB.format(split=split)):
                stale.unlink()

    def write(self, split: str, texts: list[str], labels) -> None:
        buffer = self._splits[split]
        buffer.texts.extend(texts)
        buffer.labels.extend(int(label) for label in labels)
        buffer.chars += sum(map(len, texts))
        while len(buffer.texts) >= self.layout.row_group_rows or buffer.chars > self.layout.row_group_chars:
            self._flush_group(split, buffer)

    def _group_size(self, buffer: _SplitBuffer) -> int:
        """Rows of the next row group: up to ``row_group_rows``, cut where the text passes ``row_group_chars``."""
        head = buffer.texts[: self.layout.row_group_rows]
        within = int(np.searchsorted(np.cumsum([len(t) for t in head]), self.layout.row_group_chars, side="right"))
        return max(1, min(len(head), within))

    def _flush_group(self, split: str, buffer: _SplitBuffer) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = self._group_size(buffer)
        texts, labels = buffer.texts[:n], buffer.labels[:n]
        del buffer.texts[:n], buffer.labels[:n]
        buffer.chars -= sum(map(len, texts))
        table = pa.table(
            [pa.array(texts, pa.string()), pa.array(labels, pa.int64()), pa.array([split] * n, pa.string())],
            schema=_schema(),
        )
        if buffer.writer is None:
            path = self.directory / f"{split}-{len(buffer.files):05d}.parquet"
            buffer.files.append(path)
            buffer.writer = pq.ParquetWriter(
                path,
                _schema(),
                compression="zstd",
                use_dictionary=["label", "split"],
                write_statistics=["label", "split"],
            )
        buffer.writer.write_table(table, row_group_size=n)
        buffer.rows_in_file += n
        if buffer.rows_in_file >= self.layout.shard_rows:
            self._close_file(buffer)

    @staticmethod
    def _close_file(buffer: _SplitBuffer) -> None:
        if buffer.writer is not None:
            buffer.writer.close()
            buffer.writer, buffer.rows_in_file = None, 0

    def close(self) -> dict[str, list[Path]]:
        """Write what is buffered and close the files; returns the shard files per split."""
        for split, buffer in self._splits.items():
            while buffer.texts:
                self._flush_group(split, buffer)
            self._close_file(buffer)
        return {split: list(buffer.files) for split, buffer in self._splits.items()}

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
            return
        for buffer in self._splits.values():
            self._close_file(buffer)
            for path in buffer.files:
                path.unlink(missing_ok=True)


class MemoryWriter:
    """The same interface as ``ShardWriter``, into a DataFrame: for ``prepare`` on small frames (tests)."""

    def __init__(self):
        self._rows: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}

    def write(self, split: str, texts: list[str], labels) -> None:
        self._rows[split].extend(zip(texts, (int(label) for label in labels)))

    def frame(self):
        import pandas as pd

        rows = [(text, label, split) for split in SPLITS for text, label in self._rows[split]]
        return pd.DataFrame(rows, columns=["text", "label", "split"]).astype({"label": "int64"})


def is_marker(relative: str | Path) -> bool:
    """Files such as ``_SUCCESS``, ``.part-0.csv.crc`` or ``_temporary/...``: written beside the data, not data."""
    return any(part.startswith((".", "_")) for part in Path(relative).parts)


def split_files(path: str | Path, split: str) -> tuple[list[Path], bool]:
    """(files holding ``split``, whether their rows must be filtered by the ``split`` column).

    ``path`` is an ingested folder (its ``{split}-*.parquet`` shards, no filter needed), another
    folder of Parquet files, or one Parquet file with a ``split`` column (both filtered).
    """
    path = Path(path)
    if path.is_dir():
        own = sorted(path.glob(SHARD_GLOB.format(split=split)))
        if own or any(path.glob(SHARD_GLOB.format(split="*"))):
            return own, False
        return sorted(p for p in path.rglob("*.parquet") if not is_marker(p.relative_to(path))), True
    if path.is_file():
        return [path], True
    raise FileNotFoundError(f"no ingested dataset at {path}")


def iter_split(path: str | Path, split: str, columns=("text", "label"), batch_rows: int = 1024) -> Iterator:
    """The rows of one split as ``pyarrow.RecordBatch`` es of at most ``batch_rows`` rows, in order.

    Reads one batch at a time (no memory-mapping, nothing of the dataset's size held); row groups
    whose statistics show another split are skipped.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files, needs_filter = split_files(path, split)
    wanted = list(columns) + (["split"] if needs_filter and "split" not in columns else [])
    for file in files:
        with pq.ParquetFile(file) as parquet:
            groups = [g for g in range(parquet.num_row_groups) if not needs_filter or _may_hold(parquet, g, split)]
            for batch in parquet.iter_batches(batch_size=batch_rows, row_groups=groups, columns=wanted):
                if needs_filter:
                    batch = batch.filter(pc.equal(batch.column("split"), split))
                yield batch.select(list(columns))


def _may_hold(parquet, group: int, split: str) -> bool:
    """False only when the row group's statistics prove it has no row of ``split``."""
    metadata = parquet.metadata.row_group(group)
    names = [metadata.column(i).path_in_schema for i in range(metadata.num_columns)]
    if "split" not in names:
        return True
    stats = metadata.column(names.index("split")).statistics
    if stats is None or not stats.has_min_max:
        return True
    return stats.min <= split <= stats.max
