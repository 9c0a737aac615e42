"""Ingest: read a labelled text source in chunks, map labels to ids, split, and write Parquet shards.

The output is the "Dataset (ingested)" artifact of docs/architecture.md: a folder of Parquet shards
(``textclf.data.shards``) with columns ``text`` (non-empty str), ``label`` (int, 0..K-1) and ``split``
(``train``/``validation``/``test``), plus a data card.

Memory does not grow with the texts: the source is read in chunks (``textclf.data.sources``), each
chunk's rows are checked, split and written before the next is read, and what is kept per row is
five numbers (``textclf.data.accounting``). Two passes: the label (and split) columns first, when
the label names or the source's splits must be known before rows are placed (``LabelScan``); then
every column.

Decisions worth knowing:
    * Bad rows (missing or blank text, missing or unknown label, unknown split value) are
      left out of the dataset, counted in the metadata and listed in the data card.
    * The split comes from the source when it has one: a split column, else the names of its files
      and folders (``train*``, ``validation*``/``valid*``/``dev*``, ``test*``, as Hugging Face
      ``datasets`` reads ``data_files``; a folder or glob whose files do not all name a split is an
      error). The source's validation and test rows stay where they are; a split it lacks is carved
      from its train rows by the hash. Without source splits, each row's split is decided by a seeded
      hash of its normalised text (``textclf.data.splits``): independent of row order and chunking,
      duplicates land in one split, stratified in expectation.
    * ``fingerprint``: sha256 over the label names and a multiset hash of the (split, label, text)
      rows (``textclf.data.accounting.Fingerprint``): the same data gives the same fingerprint whatever
      the row order or sharding; any change of a text, a label, a split assignment (e.g. another
      seed) or the label names changes it.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import logging
import time

import numpy as np
import pandas as pd

from textclf.data.accounting import BadRows, Fingerprint, RowLedger, RowStats
from textclf.data.errors import (  # noqa: F401 - public names
    EmptySourceError,
    EmptySplitError,
    IngestError,
    LabelColumnError,
    MissingColumnError,
    SingleClassError,
    SourceEncodingError,
    SourceError,
    SplitNameError,
)
from textclf.data.labels import LabelMapper, LabelScan, is_missing, label_vocabulary
from textclf.data.shards import Layout, MemoryWriter, ShardWriter
from textclf.data.sources import DEFAULT_SAMPLE_SIZE, FrameShard, Source, open_source, read_frame  # noqa: F401
from textclf.data.splits import (  # noqa: F401
    SAMPLE_SALT,
    SPLIT_CODE,
    SPLITS,
    SplitRule,
    carved_splits,
    normalise,
    sample_mask,
    split_alias,
    split_from_name,
    text_key,
    uniform,
)
from textclf.settings import seed_setting, setting, source_setting

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IngestSettings:
    """What to read and how to split it."""

    source: str = source_setting()
    text_column: str = setting("text", "Column holding the text.")
    label_column: str = setting("label", "Column holding the label (strings or ints).")
    split_column: str = setting(
        "split",
        "Column holding the source's split (train/validation/test, also "
        "valid/val/dev), used when present; else the files' names give it when the source "
        "is a folder or glob whose every file or folder is named train*, validation*/valid*/"
        "dev* or test* (as Hugging Face datasets reads them); else the data is split here, "
        "stratified and seeded. A split the source lacks is carved from its train rows.",
    )
    label_names: str = setting(
        "",
        "Comma-separated class names in id order for int labels (e.g. "
        "negative,positive for IMDB's 0/1); empty: derived from the data.",
    )
    validation_fraction: float = setting(
        0.1,
        "Share of rows for validation when the split is made here "
        "(of the train rows when the source has train but no validation).",
    )
    test_fraction: float = setting(
        0.1,
        "Share of rows for test when the split is made here (of the train rows when the source has train but no test).",
    )
    seed: int = seed_setting()
    sample_size: int = setting(
        0,
        "Keep about this many rows (a seeded hash of each text decides, so the "
        "sample is stratified by split and class in expectation); 0 keeps all.",
    )
    encoding: str = setting(
        "utf-8",
        "Text encoding of CSV, TSV and JSON-lines files (utf-8, latin-1, cp1252, "
        "...); Parquet and hf:// data are UTF-8 by definition.",
    )

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise IngestError(f"{name} must be between 0 and 1 (exclusive), got {getattr(self, name)}")
        if self.validation_fraction + self.test_fraction >= 1:
            raise IngestError("validation_fraction + test_fraction must leave rows for train")
        if self.sample_size < 0:
            raise IngestError(f"sample_size must be >= 0, got {self.sample_size}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise IngestError(
                f"unknown encoding {self.encoding!r}: use a Python codec name such as utf-8, latin-1 or cp1252"
            ) from None


@dataclasses.dataclass
class IngestResult:
    """What ``ingest`` wrote: the data itself is in the Parquet shards, this is its description."""

    metadata: dict
    bad_rows: list[dict]  # the first BAD_ROWS_KEPT; metadata["bad_rows"] counts them all
    warnings: list[str]


@dataclasses.dataclass
class Plan:
    """What the first pass decided: the vocabulary, how rows are split, and the sampling rate."""

    names: list[str]
    mapper: LabelMapper
    rule: SplitRule
    sample_rate: float
    origin: SplitOrigin


@dataclasses.dataclass
class Outcome:
    """What the second pass learnt."""

    plan: Plan
    ledger: RowLedger
    fingerprint: Fingerprint
    bad: BadRows
    classes: set[int]
    read_rows: int

    @functools.cached_property
    def stats(self) -> RowStats:
        """The ledger's per-row arrays, gathered once, after the last row."""
        return self.ledger.stats()


# ---------------------------------------------------------------- the two passes


SPLIT_BY_COLUMN, SPLIT_BY_NAMES, SPLIT_BY_HASH = "column", "file names", "hash"


@dataclasses.dataclass(frozen=True)
class SplitOrigin:
    """Where the rows' splits come from: the source's split column, its files' names, or the seeded hash.

    Attributes:
        kind: ``SPLIT_BY_COLUMN``, ``SPLIT_BY_NAMES`` or ``SPLIT_BY_HASH``.
        column: the split column's name (``settings.split_column``).
        by_file: with ``SPLIT_BY_NAMES``, each shard's split by shard name.
    """

    kind: str
    column: str
    by_file: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def from_source(self) -> bool:
        return self.kind != SPLIT_BY_HASH

    def chunks(self, shard, columns: list[str], chunk_rows: int):
        """The shard's frames with ``columns``; with file names, the split column holds the file's split."""
        if self.kind != SPLIT_BY_NAMES:
            yield from shard.chunks(columns, chunk_rows)
            return
        split = self.by_file[shard.name]
        for frame in shard.chunks([c for c in columns if c != self.column], chunk_rows):
            yield frame.assign(**{self.column: split}) if self.column in columns else frame


def split_origin(source: Source, settings: IngestSettings) -> SplitOrigin:
    """Every shard has the text and label columns; returns where the rows' splits come from: the split
    column when every shard has one, else the file and folder names below the source's folder or glob
    root when every file names a split (``train*``, ``validation*``/``valid*``/``dev*``, ``test*``, as
    Hugging Face ``datasets`` reads them), else the seeded hash.

    Raises:
        MissingColumnError: naming the shard, the column and the columns it has.
        SplitNameError: some files name a split and others do not, or one file names two.
    """
    with_split = []
    for shard in source.shards:
        columns = shard.columns()
        for role, column in (("text_column", settings.text_column), ("label_column", settings.label_column)):
            if column not in columns:
                raise MissingColumnError(
                    f"{role} {column!r} is not in {shard.name}; its columns are: {', '.join(map(str, columns))}"
                )
        with_split.append(settings.split_column in columns)
    if any(with_split) and not all(with_split):
        has, lacks = (next(s.name for s, w in zip(source.shards, with_split) if w is flag) for flag in (True, False))
        raise MissingColumnError(
            f"split_column {settings.split_column!r} is in {has} but not in {lacks}: "
            "every file of a source needs it, or none"
        )
    if with_split and all(with_split):
        return SplitOrigin(SPLIT_BY_COLUMN, settings.split_column)
    named = {shard.name: split_from_name(shard.relative) for shard in source.shards if shard.relative is not None}
    if not any(named.values()):
        return SplitOrigin(SPLIT_BY_HASH, settings.split_column)
    unnamed = [name for name, split in named.items() if split is None]
    if unnamed or len(named) < len(source.shards):
        example = next(name for name, split in named.items() if split)
        raise SplitNameError(
            f"{source.description}: file names give the split of {example} ({named[example]}) but not of "
            f"{(unnamed or ['a file'])[0]} ({len(unnamed)} of {len(source.shards)} files name no split). Name every "
            "file or folder train*, validation*/valid*/dev* or test*, narrow the glob, or give the rows a "
            f"{settings.split_column!r} column"
        )
    return SplitOrigin(SPLIT_BY_NAMES, settings.split_column, {name: split for name, split in named.items() if split})


def scan_labels(source: Source, settings: IngestSettings, origin: SplitOrigin, chunk_rows: int) -> LabelScan:
    """The first pass: only the label (and split) columns."""
    scan = LabelScan(settings.label_column)
    columns = [settings.label_column] + ([settings.split_column] if origin.from_source else [])
    for shard in source.shards:
        for frame in origin.chunks(shard, columns, chunk_rows):
            splits = [split_alias(v) for v in frame[settings.split_column].tolist()] if origin.from_source else None
            scan.add(frame[settings.label_column], splits)
    return scan


def plan_rows(source: Source, settings: IngestSettings, origin: SplitOrigin, chunk_rows: int) -> Plan:
    """Label names, split rule and sampling rate; reads the label column first when they need it."""
    given = [n.strip() for n in settings.label_names.split(",") if n.strip()] or source.label_names
    scan = None
    if not given or settings.sample_size or origin.kind == SPLIT_BY_COLUMN:
        scan = scan_labels(source, settings, origin, chunk_rows)
    names, lookup = label_vocabulary(scan.values() if scan else [], given)
    mapper = LabelMapper(lookup)
    present = set(origin.by_file.values()) if origin.kind == SPLIT_BY_NAMES else (scan.splits() if scan else set())
    carve = carved_splits(present) if origin.from_source else ()
    for split in carve:
        fraction = settings.validation_fraction if split == "validation" else settings.test_fraction
        log.info(
            "the source's %s has no %s split: carving %.0f%% of its train rows", origin.kind, split, 100 * fraction
        )
    rule = SplitRule(settings.test_fraction, settings.validation_fraction, settings.seed, origin.from_source, carve)
    rate = 1.0
    if settings.sample_size and scan is not None:  # a sample size always scans the labels (above)
        usable = scan.usable_rows(mapper, origin.from_source)
        rate = min(1.0, settings.sample_size / usable) if usable else 1.0
    return Plan(names, mapper, rule, rate, origin)


def check_rows(
    frame: pd.DataFrame,
    first_row: int,
    file: str | None,
    settings: IngestSettings,
    plan: Plan,
    has_split: bool,
    bad: BadRows,
) -> dict:
    """The chunk's good rows as lists (text stripped, label id, source split code, key, words) and
    its bad rows recorded in ``bad``."""
    texts = frame[settings.text_column].tolist()
    labels = frame[settings.label_column].tolist()
    splits = frame[settings.split_column].tolist() if has_split else [None] * len(texts)
    good: dict[str, list] = {"texts": [], "labels": [], "source_splits": [], "keys": [], "words": []}
    for number, (text, label, split_value) in enumerate(zip(texts, labels, splits), start=first_row):
        split = split_alias(split_value) if has_split else None
        if is_missing(text):
            reason, value = "missing text", text
        elif not isinstance(text, str):
            reason, value = "text is not a string", text
        elif is_missing(label):
            reason, value = "missing label", label
        elif (label_id := plan.mapper(label)) is None:
            reason, value = "unknown label", label
        elif has_split and split is None:
            reason, value = "unknown split", split_value
        else:
            words = text.lower().split()
            good["texts"].append(text.strip())
            good["labels"].append(label_id)
            good["source_splits"].append(SPLIT_CODE[split] if split else 0)
            good["keys"].append(text_key(" ".join(words)))
            good["words"].append(len(words))
            continue
        bad.add(file, number, reason, value)
    return good


def place_rows(good: dict, plan: Plan, seed: int, writer, outcome: Outcome) -> None:
    """Split, subsample, write and account one chunk's good rows."""
    keys = np.array(good["keys"], dtype=np.uint64)
    labels = np.array(good["labels"], dtype=np.int32)
    outcome.classes.update(np.unique(labels).tolist())
    codes = plan.rule.assign(keys, np.array(good["source_splits"], dtype=np.int8))
    keep = sample_mask(keys, plan.sample_rate, seed)
    kept = np.flatnonzero(keep)
    texts = [good["texts"][i] for i in kept]
    keys, labels, codes = keys[kept], labels[kept], codes[kept]
    for code, split in enumerate(SPLITS):
        rows = np.flatnonzero(codes == code)
        if len(rows):
            writer.write(split, [texts[i] for i in rows], labels[rows])
    outcome.fingerprint.add([SPLITS[c] for c in codes], labels.tolist(), texts)
    words = np.array(good["words"], dtype=np.int32)[kept]
    chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    outcome.ledger.add(keys, codes, labels, words, chars, uniform(keys, seed, SAMPLE_SALT), texts)


def ingest_rows(source: Source, settings: IngestSettings, writer, chunk_rows: int) -> Outcome:
    """Both passes over ``source``: rows go to ``writer`` split by split; returns what was learnt."""
    origin = split_origin(source, settings)
    has_split = origin.from_source
    plan = plan_rows(source, settings, origin, chunk_rows)
    outcome = Outcome(plan, RowLedger(), Fingerprint(), BadRows(), set(), 0)
    columns = [settings.text_column, settings.label_column] + ([settings.split_column] if has_split else [])
    several = len(source.shards) > 1
    for shard in source.shards:
        first_row = 1
        for frame in origin.chunks(shard, columns, chunk_rows):
            good = check_rows(frame, first_row, shard.name if several else None, settings, plan, has_split, outcome.bad)
            place_rows(good, plan, settings.seed, writer, outcome)
            first_row += len(frame)
            outcome.read_rows += len(frame)
    check_outcome(outcome, settings)
    return outcome


def check_outcome(outcome: Outcome, settings: IngestSettings) -> None:
    """Raises SingleClassError or EmptySplitError, naming what was found."""
    names = outcome.plan.names
    if len(outcome.classes) < 2:
        found = ", ".join(names[c] for c in sorted(outcome.classes)) or "none"
        if not outcome.read_rows:
            raise EmptySourceError(f"the source {settings.source!r} has no rows")
        raise SingleClassError(
            f"the dataset needs at least two classes in {settings.label_column!r}; found: {found} "
            f"({outcome.read_rows - outcome.bad.count} usable rows, {outcome.bad.count} bad rows)"
        )
    per_split = dict(zip(SPLITS, outcome.stats.counts(len(names)).sum(axis=0).tolist()))
    for split in SPLITS:
        if not per_split[split]:
            where = {
                SPLIT_BY_COLUMN: f"the source's {settings.split_column!r} column",
                SPLIT_BY_NAMES: "the file names (" + describe_files(outcome.plan.origin) + ")",
            }.get(outcome.plan.origin.kind, "the split")
            raise EmptySplitError(
                f"split {split!r} is empty after {where} ({outcome.ledger.rows} usable rows: "
                f"{ {k: v for k, v in per_split.items() if v} })"
            )


def describe_files(origin: SplitOrigin) -> str:
    """``train: 1 file, test: 2 files``: how many files name each split."""
    counts = {split: list(origin.by_file.values()).count(split) for split in SPLITS}
    return ", ".join(f"{split}: {n} file{'s' * (n != 1)}" for split, n in counts.items() if n)


# ---------------------------------------------------------------- entry points


def describe(outcome: Outcome, settings: IngestSettings, source_files: int) -> tuple[dict, list[str]]:
    """The artifact metadata and the warnings (a class missing from a split)."""
    names = outcome.plan.names
    counts = outcome.stats.counts(len(names))
    warnings = [
        f"class {names[label]!r} has no rows in split {split!r}"
        for s, split in enumerate(SPLITS)
        for label in range(len(names))
        if not counts[label, s]
    ]
    metadata = {
        "source": settings.source,
        "source_files": source_files,
        "labels": names,
        "num_rows": int(counts.sum()),
        "rows": dict(zip(SPLITS, counts.sum(axis=0).tolist())),
        "fingerprint": outcome.fingerprint.hexdigest(names),
        "bad_rows": outcome.bad.count,
        "bad_rows_by_reason": dict(outcome.bad.by_reason),
        "duplicates": outcome.ledger.duplicates(),
        "sample_rate": outcome.plan.sample_rate,
        "split_origin": outcome.plan.origin.kind,
        "carved_splits": list(outcome.plan.rule.carve),
    }
    if outcome.plan.origin.kind == SPLIT_BY_NAMES:
        metadata["split_files"] = outcome.plan.origin.by_file
    return metadata, warnings


def prepare(
    raw: pd.DataFrame, settings: IngestSettings, chunk_rows: int = Layout.chunk_rows
) -> tuple[pd.DataFrame, list[str], list[dict]]:
    """Turn a frame of source rows into (dataset, label names, bad rows), in memory: the same code
    path as ``ingest`` for small data and tests (ClassLabel names may come in ``raw.attrs["label_names"]``).

    Raises:
        MissingColumnError, SingleClassError, EmptySplitError.
    """
    source = Source("the given frame", [FrameShard("the given frame", raw)], raw.attrs.get("label_names"))
    writer = MemoryWriter()
    outcome = ingest_rows(source, settings, writer, chunk_rows)
    return writer.frame(), outcome.plan.names, outcome.bad.listed


def fingerprint(frame: pd.DataFrame, labels: list[str]) -> str:
    """The fingerprint of a dataset frame (``text``, ``label``, ``split``): what ``ingest`` computes streaming."""
    digest = Fingerprint()
    digest.add(frame["split"].tolist(), frame["label"].tolist(), frame["text"].tolist())
    return digest.hexdigest(labels)


def read_source(settings: IngestSettings) -> pd.DataFrame:
    """The whole source in one frame with its own columns: for small sources (demos), not the pipeline."""
    return read_frame(
        settings.source,
        encoding=settings.encoding,
        seed=settings.seed,
        sample_size=settings.sample_size,
        split_column=settings.split_column,
    )


def ingest(
    settings: IngestSettings, output_path: str, card_path: str | None = None, layout: Layout = Layout()
) -> IngestResult:
    """Read ``settings.source``, write the dataset's Parquet shards into ``output_path`` and the data card.

    Args:
        settings: What to read and how to split it.
        output_path: The folder for the shards (created; shards of an earlier run there are replaced).
        card_path: Where to write the Markdown data card; None skips it.
        layout: Chunk, row-group and shard sizes (tests make them small).

    Returns:
        The artifact metadata (labels, rows per split, fingerprint, source, bad-row counts,
        duplicates), the first bad rows (file, record number from 1, reason, offending value) and
        warnings (e.g. a class missing from a split).

    Raises:
        IngestError: a subclass that names the problem (source, file, column, class or split).
    """
    started = time.monotonic()
    with open_source(
        settings.source,
        encoding=settings.encoding,
        seed=settings.seed,
        sample_size=settings.sample_size,
        split_column=settings.split_column,
    ) as source:
        with ShardWriter(output_path, layout) as writer:
            outcome = ingest_rows(source, settings, writer, layout.chunk_rows)
        files = len(source.shards)
    metadata, warnings = describe(outcome, settings, files)
    for warning in warnings:
        log.warning(warning)
    if card_path:
        from textclf.datacard import write_data_card

        write_data_card(card_path, outcome.stats, metadata, outcome.bad.listed, warnings)
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info(
        "ingested %d of %d rows from %d file(s) (%s), %d bad, in %.1fs (%.0f rows/s); fingerprint %s",
        metadata["num_rows"],
        outcome.read_rows,
        files,
        ", ".join(f"{k} {v}" for k, v in metadata["rows"].items()),
        outcome.bad.count,
        elapsed,
        outcome.read_rows / elapsed,
        metadata["fingerprint"][:12],
    )
    return IngestResult(metadata=metadata, bad_rows=outcome.bad.listed, warnings=warnings)
