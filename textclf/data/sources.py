"""Where rows come from: a source string becomes shards, and each shard is read in chunks.

Sources:
    ``sample:`` / ``sample:N``: generated reviews (``textclf.sample_data``).
    Files, local or in any store ``textclf.platform.storage`` reads (``gs://``, ``s3://``...): one
    file, a folder (every data file below it; names starting with ``.`` or ``_`` such as Spark's
    ``_SUCCESS`` or ``_temporary/`` are markers, not data) or a glob (``data/part-*.csv.gz``,
    ``gs://bucket/export/*.parquet``; ``**`` crosses folders). Each file is of a format of
    ``textclf.data.formats`` (``.csv``, ``.tsv``, ``.parquet``, ``.jsonl``), optionally ``.gz``; the
    formats may mix.
    ``hf://owner/name[:config]``: a Hugging Face hub dataset through ``datasets`` (memory-mapped).

A file of a folder or glob keeps its path below the folder or the glob's fixed part
(``FileShard.relative``): its folder and file names may give its rows' split (``train.csv``,
``test/part-0.csv``; ``textclf.data.splits.split_from_name``). A single file's name says nothing.

Nothing here holds a whole source: a shard yields ``pandas`` frames of at most ``chunk_rows``
rows with the columns asked for. Every file, local or remote, is streamed through the storage
module (a remote one a few MB at a time, nothing downloaded whole); only a ``.parquet.gz``, which
Parquet must seek in, is unpacked into the source's work folder, removed when the source is closed.

A file that cannot be read ends in a named error that says which file and what to do: bytes
that are not valid in ``encoding`` (with the byte offset and line), an empty file, a malformed
CSV line or JSON record, a broken gzip stream.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import logging
import os
import shutil
import socket
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast
from urllib.parse import urlparse

import pandas as pd

from textclf.data.errors import EmptySourceError, SourceEncodingError, SourceError
from textclf.data.formats import FORMATS, FileFormat, described, format_of
from textclf.data.shards import is_marker
from textclf.platform import storage

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

DATA_SUFFIXES = tuple(FORMATS)
DEFAULT_SAMPLE_SIZE = 2000
HUB_PROBE_TIMEOUT_S = 5.0
ENCODING_HINT = (
    "Set the ingest parameter encoding to the file's encoding (for example latin-1 or cp1252), "
    "or re-export the file as UTF-8."
)


def file_kind(name: str) -> tuple[str, bool] | None:
    """(format suffix, gzipped) of a data file name, e.g. ``(".csv", True)`` for ``a.csv.gz``; None otherwise."""
    found = format_of(name)
    return (found[0].suffix, found[1]) if found else None


def require_format(name: str) -> tuple[FileFormat, bool]:
    """(format, gzipped) of a data file name, or SourceError naming the formats there are."""
    found = format_of(name)
    if found is None:
        raise SourceError(
            f"unsupported file type {''.join(Path(name).suffixes) or '(none)'} for {name}: use {described()}"
        )
    return found


def require_kind(name: str) -> tuple[str, bool]:
    fmt, compressed = require_format(name)
    return fmt.suffix, compressed


# ---------------------------------------------------------------- shards


class Shard:
    """One unit of a source (a file, a hub split, an in-memory frame), read in chunks."""

    name: str
    # The file's path below the source's folder or glob root, whose folder and file names may name its
    # split (``textclf.data.splits.split_from_name``); None when the source is one file or no files.
    relative: str | None = None

    def columns(self) -> list[str]:
        raise NotImplementedError

    def chunks(self, columns: list[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """Frames of at most ``chunk_rows`` rows with ``columns`` (None: all), in the shard's order."""
        raise NotImplementedError


@dataclass
class FrameShard(Shard):
    """A frame already in memory: the ``sample:`` source, and ``prepare`` on a frame."""

    name: str
    frame: pd.DataFrame

    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def chunks(self, columns, chunk_rows):
        frame = self.frame if columns is None else self.frame[columns]
        for start in range(0, len(frame), chunk_rows):
            yield frame.iloc[start : start + chunk_rows]


@dataclass
class HubShard(Shard):
    """One split of a hub dataset; its name becomes the ``split_column`` value."""

    name: str
    dataset: datasets.Dataset
    split: str
    split_column: str

    def columns(self) -> list[str]:
        return [*self.dataset.column_names, self.split_column]

    def chunks(self, columns, chunk_rows):
        wanted = self.columns() if columns is None else columns
        present = [c for c in wanted if c != self.split_column]
        for table in self.dataset.select_columns(present).with_format("arrow").iter(batch_size=chunk_rows):
            frame = table.to_pandas()
            if self.split_column in wanted:
                frame[self.split_column] = self.split
            yield frame[wanted]


@dataclass
class FileShard(Shard):
    """A data file, local or remote, streamed through ``textclf.platform.storage``; ``name`` is its
    path or URI as the source named it. Its format (``textclf.data.formats``) reads it."""

    name: str
    encoding: str = "utf-8"
    work_dir: Path | None = None  # where a .parquet.gz is unpacked
    relative: str | None = None  # see Shard.relative
    _unpacked: Path | None = field(default=None, init=False, repr=False)

    @property
    def format(self) -> FileFormat:
        return require_format(self.name)[0]

    @property
    def kind(self) -> str:
        return self.format.suffix

    @property
    def compressed(self) -> bool:
        return require_format(self.name)[1]

    def open_raw(self) -> contextlib.AbstractContextManager[IO[bytes]]:
        return storage.open(self.name, "rb")

    @contextlib.contextmanager
    def open_binary(self) -> Iterator[IO[bytes]]:
        with self.open_raw() as raw:
            if not self.compressed:
                yield raw
                return
            with gzip.GzipFile(fileobj=raw, mode="rb") as plain:
                yield cast(IO[bytes], plain)  # typeshed has GzipFile apart from IO[bytes]; it reads like one

    def _check_not_empty(self) -> None:
        with self._reading(), self.open_binary() as handle:
            if not handle.read(1):
                packed = " after decompression" if self.compressed and storage.size(self.name) else ""
                raise EmptySourceError(
                    f"{self.name} is empty (0 bytes{packed}): remove it from the source or export it again"
                )

    @contextlib.contextmanager
    def open_seekable(self) -> Iterator[IO[bytes] | Path]:
        """The file read in place (seeking; remote ones in ranges), or for a gzipped one, which cannot be
        sought in, the file unpacked once into the work folder."""
        if not self.compressed:
            with self.open_raw() as raw:
                yield raw
            return
        if self._unpacked is None:
            target = Path(self.work_dir or tempfile.mkdtemp(prefix="ingest-")) / f"unpacked-{id(self)}.parquet"
            with self.open_binary() as packed, open(target, "wb") as plain:
                shutil.copyfileobj(packed, plain, 1 << 20)
            self._unpacked = target
        yield self._unpacked

    def columns(self) -> list[str]:
        self._check_not_empty()
        with self._reading():
            return self.format.columns(self)

    def chunks(self, columns, chunk_rows):
        self._check_not_empty()
        with self._reading():
            yield from self.format.chunks(self, columns, chunk_rows)

    @contextlib.contextmanager
    def _reading(self):
        """Turn the readers' exceptions into named errors that say which file and what to do."""
        try:
            yield
        except SourceError:
            raise
        except UnicodeDecodeError as error:
            raise SourceEncodingError(self._describe_undecodable(error)) from error
        except pd.errors.EmptyDataError as error:
            raise EmptySourceError(
                f"{self.name} has no header and no rows: remove it from the source or export it again"
            ) from error
        except pd.errors.ParserError as error:
            raise SourceError(f"{self.name} is not {self.format.what}: {error}") from error
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            raise SourceError(
                f"{self.name} is not a complete gzip file ({error}): download or export it again"
            ) from error
        except ValueError as error:  # json.JSONDecodeError included
            if self.format.invalid(error):
                raise SourceError(f"{self.name} is not {self.format.what}: {error}") from error
            raise

    def _describe_undecodable(self, error: UnicodeDecodeError) -> str:
        where = locate_undecodable(self.open_binary, error.encoding or self.encoding)
        if where is None:  # the reader saw something our scan did not: say what it said
            return f"{self.name} is not valid {self.encoding}: {error}. {ENCODING_HINT}"
        offset, line, bad, reason = where
        decompressed = " of the decompressed data" if self.compressed else ""
        return (
            f"{self.name}: byte {offset}{decompressed} (line {line}) is not valid {self.encoding} "
            f"({reason}: {bad.hex(' ')}). {ENCODING_HINT}"
        )


def locate_undecodable(open_binary, encoding: str) -> tuple[int, int, bytes, str] | None:
    """(byte offset, line from 1, the bytes, why) of the first bytes not valid in ``encoding``; None if all are.

    Reads the stream in blocks with an incremental decoder, so it costs what reading the file costs.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset, newlines = 0, 0
    with open_binary() as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            pending = decoder.getstate()[0]
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                data = pending + block
                position = offset - len(pending) + error.start
                line = newlines - pending.count(b"\n") + data[: error.start].count(b"\n") + 1
                return position, line, data[error.start : error.end], error.reason
            offset += len(block)
            newlines += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:
            pending = decoder.getstate()[0] or b"?"
            return offset - len(pending), newlines + 1, pending, f"truncated at the end of the file: {error.reason}"
    return None


# ---------------------------------------------------------------- sources


@dataclass
class Source:
    """The shards of one source, and the label names it carries (hub ClassLabels), if any."""

    description: str
    shards: Sequence[Shard]
    label_names: list[str] | None = None


@contextlib.contextmanager
def open_source(
    source: str, *, encoding: str = "utf-8", seed: int = 0, sample_size: int = 0, split_column: str = "split"
) -> Iterator[Source]:
    """The shards of ``source`` (see the module docstring); downloaded files are removed on exit.

    Raises:
        SourceError: unknown scheme or format, nothing at the path, unreachable hub.
    """
    source = source.strip()
    with tempfile.TemporaryDirectory(prefix="ingest-") as work:
        if source.startswith("sample:"):
            yield Source(source, [FrameShard(source, _sample_frame(source, seed, sample_size))])
        elif source.startswith("hf://"):
            yield _hub_source(source[len("hf://") :], split_column)
        else:
            yield Source(source, file_shards(source, encoding, Path(work)))


def _sample_frame(source: str, seed: int, sample_size: int) -> pd.DataFrame:
    from textclf.sample_data import generate

    size_text = source[len("sample:") :]
    try:
        size = int(size_text) if size_text else (sample_size or DEFAULT_SAMPLE_SIZE)
    except ValueError:
        raise SourceError(f"sample size must be an integer: {source!r} (use sample: or sample:N)") from None
    return pd.DataFrame(generate(size, seed=seed))


def data_files(names: list[str], folder: str) -> list[str]:
    """The data files among a folder's files (``names`` relative to it); markers are left out quietly,
    other files with a warning."""
    data = [n for n in names if not is_marker(n) and file_kind(n)]
    others = [n for n in names if not is_marker(n) and not file_kind(n)]
    if others:
        log.warning("%s: %d files that are not data files are left out: %s", folder, len(others), ", ".join(others[:5]))
    if not data:
        raise EmptySourceError(f"no data file ({described()}) in {folder}")
    return data


def below_root(files: list[str], source: str, is_folder: bool) -> list[str | None]:
    """Each file's path below the folder or glob root that ``source`` names (what may name its split);
    all None when ``source`` is a single file, whose name says nothing about its rows' splits."""
    if storage.has_glob(source):
        root = storage.glob_root(source)
    elif is_folder:
        root = source.rstrip("/")
    else:
        return [None] * len(files)
    base = PurePosixPath(root)  # normalised like the names (``./data/`` and ``data`` are one folder)
    return [PurePosixPath(name).relative_to(base).as_posix() for name in files]


def source_files(source: str) -> tuple[list[str], bool]:
    """(the data files ``source`` names, sorted; whether it names a folder): the file, a folder's data
    files, or a glob's matches, local or remote.

    Raises:
        SourceError: nothing there, a glob's match or the file is not a data file, or no store reads it
            (EmptySourceError: a folder without a data file).
    """
    try:
        found = storage.entries(source)
    except FileNotFoundError as error:
        if not storage.has_glob(source) and storage.is_dir(source):  # there, but holds nothing to read
            raise EmptySourceError(f"no data file ({described()}) in {source}") from error
        raise SourceError(f"source not found: {error}") from error
    except storage.UnsupportedURIError as error:
        raise SourceError(
            f"unsupported source scheme {storage.protocol(source)!r} in {source!r}: use sample:, "
            f"hf://, or a local or remote file, folder or glob ({error})"
        ) from error
    is_folder = not storage.has_glob(source) and [entry.uri for entry in found] != [source]
    if not is_folder:
        for entry in found:
            require_kind(entry.uri)
        return [entry.uri for entry in found], False
    names = data_files([entry.relative for entry in found], source)
    return [storage.join(source, name) for name in names], True


def file_shards(source: str, encoding: str, work: Path) -> list[FileShard]:
    """One shard per data file of a local or remote file, folder or glob (see :func:`source_files`)."""
    files, is_folder = source_files(source)
    relative = below_root(files, source, is_folder)
    return [FileShard(name, encoding, work, rel) for name, rel in zip(files, relative)]


def _hub_reachable() -> str | None:
    """None when the hub answers a TCP connect quickly, else why not (datasets would retry for minutes)."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as error:
        return f"{endpoint.hostname}:{port}: {error}"


def _hub_source(name: str, split_column: str) -> Source:
    """Every split of a hub dataset, one shard each, memory-mapped by ``datasets``.

    Offline (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``) only the local cache is tried; online, a
    quick connect probe runs first so an unreachable hub fails in seconds, not after retries.
    Splits other than train/validation/test (IMDB's unlabelled "unsupervised") come through too
    and are reported as bad rows.
    """
    import datasets

    repo, _, config = name.partition(":")
    if not repo:
        raise SourceError("hf:// source needs a dataset name: hf://owner/name[:config]")
    offline = any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    if not offline:
        problem = _hub_reachable()
        if problem:
            raise SourceError(
                f"cannot reach the Hugging Face hub for hf://{name} ({problem}). Use a local "
                "file or gs:// copy of the data, or set HF_HUB_OFFLINE=1 to read a cached copy."
            )
    try:
        loaded = datasets.load_dataset(repo, config or None)
    except (ConnectionError, OSError) as error:
        mode = "offline mode (HF_HUB_OFFLINE) and no cached copy" if offline else "the hub could not be read"
        raise SourceError(f"cannot load hf://{name}: {mode}: {error}") from error
    shards = [HubShard(f"hf://{name} ({split})", part, split, split_column) for split, part in loaded.items()]
    features = next(iter(loaded.values())).features
    label_feature = next((f for f in features.values() if isinstance(f, datasets.ClassLabel)), None)
    return Source(f"hf://{name}", shards, list(label_feature.names) if label_feature is not None else None)


def read_frame(source: str, **options) -> pd.DataFrame:
    """The whole source in one frame, every column: for small sources (demos, tests), not for the pipeline."""
    with open_source(source, **options) as opened:
        frames = [frame for shard in opened.shards for frame in shard.chunks(None, 100_000)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if opened.label_names:
        frame.attrs["label_names"] = opened.label_names
    return frame
