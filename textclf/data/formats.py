"""The file formats a data source may hold, one entry each in :data:`FORMATS`.

A format reads one file (local or remote, streamed) in chunks of pandas frames and names its columns without reading its
rows; the file is gzipped when its name ends in ``.gz`` after the format's suffix (``a.csv.gz``).
``textclf.data.sources.FileShard`` picks the format by the file name and turns the readers'
exceptions into named errors (which file, what to do); a format says which of its ``ValueError``
mean "not a valid file" (:meth:`FileFormat.invalid`).

Adding a format: a :class:`FileFormat` subclass and its entry in :data:`FORMATS`. Folders, globs,
remote stores, split names, encodings and the error messages follow from the registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

GZIP_SUFFIX = ".gz"


class DataFile(Protocol):
    """What a format reads: one file, local or remote (``textclf.data.sources.FileShard``)."""

    name: str  # its path or URI as the source named it: for messages
    encoding: str

    @property
    def compressed(self) -> bool:
        """Whether the file is gzipped."""

    def open_raw(self) -> AbstractContextManager[IO[bytes]]:
        """The file's bytes as stored (still gzipped when it is), streamed through the storage layer."""

    def open_binary(self) -> AbstractContextManager[IO[bytes]]:
        """The file's bytes, decompressed."""

    def open_seekable(self) -> AbstractContextManager[IO[bytes] | Path]:
        """The decompressed file for readers that seek (Parquet's): read in place, or unpacked once when gzipped."""


class FileFormat:
    """One file format.

    Attributes:
        suffix: the file name's suffix (lower case, with its dot), before an optional ``.gz``.
        what: how an error names a file that is not valid in it ("valid CSV", "a readable Parquet file").
    """

    suffix = ""
    what = ""

    def columns(self, file: DataFile) -> list[str]:
        """The file's column names, without reading its rows."""
        raise NotImplementedError

    def chunks(self, file: DataFile, columns: list[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """Frames of at most ``chunk_rows`` rows with ``columns`` (None: all), in the file's order."""
        raise NotImplementedError

    def invalid(self, error: ValueError) -> bool:
        """Whether a ``ValueError`` its reader raised means the file is not valid in this format (else a bug)."""
        return False


class Csv(FileFormat):
    """Comma-separated values with a header line; every column read as text."""

    suffix, what = ".csv", "valid CSV"
    separator = ","

    def options(self, file: DataFile) -> dict[str, Any]:
        # The columns are read as text, so "007" stays "007" and a label column means the same in
        # every chunk; an empty cell is missing, while "NA" or "null" are texts like any other.
        return {
            "sep": self.separator,
            "dtype": str,
            "keep_default_na": False,
            "na_values": [""],
            "compression": "gzip" if file.compressed else None,
            "encoding": file.encoding,
        }

    def columns(self, file: DataFile) -> list[str]:
        import pandas as pd

        with file.open_raw() as handle:
            return list(pd.read_csv(handle, nrows=0, **self.options(file)).columns)

    def chunks(self, file: DataFile, columns: list[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pandas as pd

        with (
            file.open_raw() as handle,
            pd.read_csv(handle, usecols=columns, chunksize=chunk_rows, **self.options(file)) as reader,
        ):
            yield from reader


class Tsv(Csv):
    """Tab-separated values with a header line."""

    suffix, what = ".tsv", "valid TSV"
    separator = "\t"


class Parquet(FileFormat):
    """Apache Parquet, read a record batch at a time (a gzipped one is unpacked first: Parquet seeks)."""

    suffix, what = ".parquet", "a readable Parquet file"

    def columns(self, file: DataFile) -> list[str]:
        import pyarrow.parquet as pq

        with file.open_seekable() as source, pq.ParquetFile(source) as parquet:
            return list(parquet.schema_arrow.names)

    def chunks(self, file: DataFile, columns: list[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        with file.open_seekable() as source, pq.ParquetFile(source) as parquet:
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
                yield batch.to_pandas()

    def invalid(self, error: ValueError) -> bool:
        return type(error).__module__.startswith("pyarrow")


class JsonLines(FileFormat):
    """One JSON object per line; the first object's keys are the columns."""

    suffix, what = ".jsonl", "valid JSON lines (one object per line)"

    def columns(self, file: DataFile) -> list[str]:
        from textclf.data.errors import SourceError

        with file.open_binary() as handle:
            first = next((line for line in handle if line.strip()), b"{}")
        record = json.loads(first.decode(file.encoding))
        if not isinstance(record, dict):
            raise SourceError(f"{file.name}: line 1 is not a JSON object: {first[:80]!r}")
        return list(record)

    def chunks(self, file: DataFile, columns: list[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
        import pandas as pd

        with (
            file.open_raw() as handle,
            pd.read_json(
                handle,
                lines=True,
                dtype=False,
                convert_dates=False,
                chunksize=chunk_rows,
                compression="gzip" if file.compressed else None,
                encoding=file.encoding,
            ) as reader,
        ):
            for frame in reader:
                yield frame if columns is None else frame.reindex(columns=columns)

    def invalid(self, error: ValueError) -> bool:
        return True  # pandas' JSON reader says "Expected object or value" and the like


FORMATS: dict[str, FileFormat] = {fmt.suffix: fmt for fmt in (Csv(), Tsv(), Parquet(), JsonLines())}


def described() -> str:
    """The formats as messages and help texts name them: ``.csv, .tsv, .parquet or .jsonl, optionally .gz``."""
    *others, last = FORMATS
    return f"{', '.join(others)} or {last}, optionally {GZIP_SUFFIX}" if others else f"{last}, optionally {GZIP_SUFFIX}"


def format_of(name: str) -> tuple[FileFormat, bool] | None:
    """(format, gzipped) of a data file name, e.g. CSV and True for ``a.csv.gz``; None when no format has its suffix."""
    suffixes = [s.lower() for s in Path(name).suffixes]
    compressed = suffixes[-1:] == [GZIP_SUFFIX]
    kind = (suffixes[:-1] if compressed else suffixes)[-1:]
    return (FORMATS[kind[0]], compressed) if kind and kind[0] in FORMATS else None
