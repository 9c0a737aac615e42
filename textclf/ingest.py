"""Ingest: read a labelled text source, map labels to ids, split, and write one Parquet file.

The output is the "Dataset (ingested)" artifact of ARCHITECTURE.md: columns ``text`` (non-empty
str), ``label`` (int, 0..K-1) and ``split`` (``train``/``validation``/``test``), plus a data card.

Sources:
    ``sample:`` / ``sample:N``: generated reviews (see ``textclf.sample_data``).
    A local ``.csv``, ``.tsv``, ``.parquet`` or ``.jsonl`` file, each optionally ``.gz``.
    ``hf://owner/name[:config]``: a Hugging Face hub dataset through ``datasets``.
    ``gs://bucket/path.ext``: copied locally by ``textclf.storage.localize`` first.

Decisions worth knowing:
    * Bad rows (missing or blank text, missing or unknown label, unknown split value) are
      left out of the dataset, counted in the metadata and listed in the data card.
    * The stratified split orders each class by a seeded hash of its normalised text and cuts
      there, so the split does not depend on row order and duplicate texts land in one split.
    * ``fingerprint`` is the sha256 of the label names and the sorted (split, label, text) rows:
      the same data gives the same fingerprint whatever the row order; any change of a text,
      a label, a split assignment (e.g. another seed) or the label names changes it.
"""


import dataclasses
import gzip
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from textclf.settings import seed_setting, setting, source_setting

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "development": "validation",
    "test": "test", "testing": "test",
}
# Pairs whose first (negative) class should be id 0, whatever the alphabet says.
WELL_KNOWN_PAIRS = (("negative", "positive"), ("neg", "pos"), ("ham", "spam"),
                    ("false", "true"), ("no", "yes"))
DEFAULT_SAMPLE_SIZE = 2000
HUB_PROBE_TIMEOUT_S = 5.0


class IngestError(ValueError):
    """The source cannot become a dataset; the message names the problem."""


class SourceError(IngestError):
    """The source cannot be read: unknown scheme or format, missing file, unreachable hub."""


class MissingColumnError(IngestError):
    """A column named in the settings is not in the source."""


class SingleClassError(IngestError):
    """Fewer than two classes are left after the bad rows are set aside."""


class EmptySplitError(IngestError):
    """A split (train, validation or test) has no rows."""


@dataclasses.dataclass
class IngestSettings:
    """What to read and how to split it."""

    source: str = source_setting()
    text_column: str = setting("text", "Column holding the text.")
    label_column: str = setting("label", "Column holding the label (strings or ints).")
    split_column: str = setting("split", "Column holding the source's split (train/validation/test, also "
                                "valid/val/dev), used when present; otherwise the data is split here, "
                                "stratified and seeded.")
    label_names: str = setting("", "Comma-separated class names in id order for int labels (e.g. "
                               "negative,positive for IMDB's 0/1); empty: derived from the data.")
    validation_fraction: float = setting(0.1, "Share of rows for validation when the split is made here "
                                         "(of the train rows when the source has train and test only).")
    test_fraction: float = setting(0.1, "Share of rows for test when the split is made here.")
    seed: int = seed_setting()
    sample_size: int = setting(0, "Keep at most this many rows, stratified by split and class; 0 keeps all.")

    def __post_init__(self):
        for name in ("validation_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise IngestError(f"{name} must be between 0 and 1 (exclusive), got {getattr(self, name)}")
        if self.validation_fraction + self.test_fraction >= 1:
            raise IngestError("validation_fraction + test_fraction must leave rows for train")
        if self.sample_size < 0:
            raise IngestError(f"sample_size must be >= 0, got {self.sample_size}")


@dataclasses.dataclass
class IngestResult:
    """What ``ingest`` wrote: the data itself is in the Parquet file, this is its description."""

    metadata: dict
    bad_rows: list[dict]
    warnings: list[str]


# ---------------------------------------------------------------- reading sources


def read_source(settings: IngestSettings) -> pd.DataFrame:
    """Read the source into a DataFrame with the source's own columns (nothing dropped yet)."""
    source = settings.source.strip()
    if source.startswith("sample:"):
        from textclf.sample_data import generate

        size_text = source[len("sample:"):]
        try:
            size = int(size_text) if size_text else (settings.sample_size or DEFAULT_SAMPLE_SIZE)
        except ValueError:
            raise SourceError(f"sample size must be an integer: {source!r} (use sample: or sample:N)") from None
        return pd.DataFrame(generate(size, seed=settings.seed))
    if source.startswith("hf://"):
        return _read_hub(source[len("hf://"):], settings.split_column)
    if source.startswith("gs://"):
        from textclf import storage  # only gs:// sources need the cloud client

        with tempfile.TemporaryDirectory(prefix="ingest-") as dest:
            try:
                return read_file(storage.localize(source, dest), settings.text_column)
            except FileNotFoundError as error:
                raise SourceError(f"source not found: {source} ({error})") from error
    scheme = urlparse(source).scheme
    if scheme == "file":
        source = urlparse(source).path
    elif len(scheme) > 1:  # one letter is a Windows drive
        raise SourceError(f"unsupported source scheme {scheme!r} in {source!r}: "
                          "use sample:, a local file, hf:// or gs://")
    return read_file(source, settings.text_column)


def read_file(path: str, text_column: str = "text") -> pd.DataFrame:
    """Read a local ``.csv``, ``.tsv``, ``.parquet`` or ``.jsonl`` file, each optionally gzipped.

    In CSV/TSV the ``text_column`` is read as text, so "007" stays "007"; an empty cell is
    missing, while "NA" or "null" are texts like any other.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"source file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    compressed = suffixes[-1:] == [".gz"]
    kind = (suffixes[:-1] if compressed else suffixes)[-1:] or [""]
    kind = kind[0]
    if kind in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if kind == ".tsv" else ",", dtype={text_column: str},
                           keep_default_na=False, na_values=[""], compression="gzip" if compressed else None)
    if kind == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False, convert_dates=False,
                            compression="gzip" if compressed else None)
    if kind == ".parquet":
        if compressed:
            with gzip.open(path, "rb") as handle:
                return pd.read_parquet(handle)
        return pd.read_parquet(path)
    raise SourceError(f"unsupported file type {''.join(path.suffixes) or '(none)'} for {path}: "
                      "use .csv, .tsv, .parquet or .jsonl, optionally .gz")


def _hub_reachable() -> str | None:
    """None when the hub answers a TCP connect quickly, else why not (datasets would retry for minutes)."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as error:
        return f"{endpoint.hostname}:{port}: {error}"


def _read_hub(name: str, split_column: str) -> pd.DataFrame:
    """Load every split of a hub dataset into one frame with a ``split_column``.

    Offline (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``) only the local cache is tried; online, a
    quick connect probe runs first so an unreachable hub fails in seconds, not after retries.
    ClassLabel names travel in ``frame.attrs["label_names"]``. Splits other than train/validation/
    test (IMDB's unlabelled "unsupervised") come through too and are reported as bad rows.
    """
    import datasets

    repo, _, config = name.partition(":")
    if not repo:
        raise SourceError("hf:// source needs a dataset name: hf://owner/name[:config]")
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    if not offline:
        problem = _hub_reachable()
        if problem:
            raise SourceError(f"cannot reach the Hugging Face hub for hf://{name} ({problem}). Use a local "
                              "file or gs:// copy of the data, or set HF_HUB_OFFLINE=1 to read a cached copy.")
    try:
        loaded = datasets.load_dataset(repo, config or None)
    except (ConnectionError, OSError) as error:
        mode = "offline mode (HF_HUB_OFFLINE) and no cached copy" if offline else "the hub could not be read"
        raise SourceError(f"cannot load hf://{name}: {mode}: {error}") from error
    frames = []
    for split_name, part in loaded.items():
        frame = part.to_pandas()
        frame[split_column] = split_name
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    features = next(iter(loaded.values())).features
    label_feature = next((f for f in features.values() if isinstance(f, datasets.ClassLabel)), None)
    if label_feature is not None:
        frame.attrs["label_names"] = list(label_feature.names)
    return frame


# ---------------------------------------------------------------- labels, bad rows, splits


def _integral(value) -> int | None:
    """The value as an int when it is one (1, 1.0, "1", numpy ints), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _is_missing(value) -> bool:
    """None, NaN, pd.NA or a blank string."""
    if isinstance(value, str):
        return not value.strip()
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def label_vocabulary(values: list, label_names: list[str] | None = None) -> tuple[list[str], dict]:
    """Return (names, lookup): names in id order, lookup from a raw label value to its id.

    With ``label_names``: ints 0..K-1 and the names themselves are accepted, anything else is
    unknown. Without: ints keep their value when they are exactly 0..K-1 (else sorted ids), names
    are their strings; strings are sorted, except well-known pairs (negative/positive, neg/pos,
    ham/spam, false/true, no/yes) whose negative class is id 0 whatever the case.
    """
    present = [v for v in values if not _is_missing(v)]
    if label_names:
        lookup = {name: i for i, name in enumerate(label_names)}
        lookup.update({i: i for i in range(len(label_names))})
        return list(label_names), lookup
    ints = {_integral(v) for v in present}
    if present and None not in ints:
        ordered = sorted(ints)
        names = [str(v) for v in ordered]
        return names, {v: i for i, v in enumerate(ordered)}
    strings = sorted({str(v).strip() for v in present})
    lowered = tuple(sorted(s.lower() for s in strings))
    for pair in WELL_KNOWN_PAIRS:
        if lowered == tuple(sorted(pair)):
            strings = sorted(strings, key=lambda s: pair.index(s.lower()))
    return strings, {name: i for i, name in enumerate(strings)}


def _label_id(value, lookup: dict) -> int | None:
    if isinstance(value, str):
        value = value.strip()
        if value in lookup:
            return lookup[value]
    number = _integral(value)
    if number is not None and number in lookup:
        return lookup[number]
    return lookup.get(str(value))


def _in_hash_order(rows: pd.DataFrame, seed: int) -> pd.Index:
    """The rows' index in a seeded pseudo-random order that depends only on each normalised text.

    Row order in the source does not matter, and equal texts sit next to each other.
    """
    keys = rows["text"].map(lambda t: hashlib.sha256(f"{seed}\x1f{normalise(t)}".encode()).hexdigest())
    return keys.sort_values(kind="stable").index


def normalise(text: str) -> str:
    """Lower-case, whitespace collapsed: what counts as 'the same text' for duplicates."""
    return " ".join(text.lower().split())


def duplicate_stats(frame: pd.DataFrame) -> dict[str, int]:
    """Duplicate counts over normalised texts (see ``normalise``).

    ``duplicate_rows``: rows whose text already appeared in an earlier row; ``cross_split_texts``:
    distinct texts present in more than one split (leakage); ``conflicting_label_texts``: distinct
    texts present with more than one label.
    """
    key = frame["text"].map(normalise)
    grouped = frame.assign(_key=key).groupby("_key")
    return {
        "duplicate_rows": int(key.duplicated().sum()),
        "cross_split_texts": int((grouped["split"].nunique() > 1).sum()),
        "conflicting_label_texts": int((grouped["label"].nunique() > 1).sum()),
    }


def _cut(frame: pd.DataFrame, fractions: dict[str, float], rest: str, seed: int) -> pd.Series:
    """Assign each row a split: per class, in hash order, the first rows go to ``fractions``."""
    assigned = pd.Series(rest, index=frame.index, dtype=object)
    for _, group in frame.groupby("label"):
        ordered = _in_hash_order(group, seed)
        start = 0
        for split, fraction in fractions.items():
            count = round(len(ordered) * fraction)
            assigned[ordered[start:start + count]] = split
            start += count
    return assigned


def _subsample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """Keep ``size`` rows, stratified by split and class (largest remainders), in hash order."""
    if size >= len(frame):
        return frame
    groups = frame.groupby(["split", "label"])
    quotas = {key: len(group) * size / len(frame) for key, group in groups}
    counts = {key: int(q) for key, q in quotas.items()}
    for key in sorted(quotas, key=lambda k: counts[k] - quotas[k])[:size - sum(counts.values())]:
        counts[key] += 1
    keep = []
    for key, group in groups:
        keep.extend(_in_hash_order(group, seed)[:counts[key]])
    return frame.loc[sorted(keep)]


def fingerprint(frame: pd.DataFrame, labels: list[str]) -> str:
    """sha256 of the label names and the sorted (split, label, text) rows: row order does not count."""
    digest = hashlib.sha256(json.dumps(labels).encode())
    rows = sorted(f"{s}\x1f{l}\x1f{t}" for s, l, t in zip(frame["split"], frame["label"], frame["text"]))
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def prepare(raw: pd.DataFrame, settings: IngestSettings) -> tuple[pd.DataFrame, list[str], list[dict]]:
    """Turn the source's rows into (dataset, label names, bad rows).

    Raises:
        MissingColumnError, SingleClassError, EmptySplitError.
    """
    for role, column in (("text_column", settings.text_column), ("label_column", settings.label_column)):
        if column not in raw.columns:
            raise MissingColumnError(f"{role} {column!r} is not in the source {settings.source!r}; "
                                     f"its columns are: {', '.join(map(str, raw.columns))}")
    given = [n.strip() for n in settings.label_names.split(",") if n.strip()] or raw.attrs.get("label_names")
    names, lookup = label_vocabulary(raw[settings.label_column].tolist(), given)
    has_split = settings.split_column in raw.columns

    rows, bad = [], []
    columns = [raw[settings.text_column], raw[settings.label_column]]
    if has_split:
        columns.append(raw[settings.split_column])
    for number, values in enumerate(zip(*columns), start=1):
        text, label = values[0], values[1]
        split = SPLIT_ALIASES.get(str(values[2]).strip().lower()) if has_split else None
        if _is_missing(text):
            reason, value = "missing text", text
        elif not isinstance(text, str):
            reason, value = "text is not a string", text
        elif _is_missing(label):
            reason, value = "missing label", label
        elif (label_id := _label_id(label, lookup)) is None:
            reason, value = "unknown label", label
        elif has_split and split is None:
            reason, value = "unknown split", values[2]
        else:
            rows.append((text.strip(), label_id, split))
            continue
        bad.append({"row": number, "reason": reason, "value": repr(value)[:80]})
    frame = pd.DataFrame(rows, columns=["text", "label", "split"]).astype({"label": "int64"})

    classes = sorted(frame["label"].unique())
    if len(classes) < 2:
        found = ", ".join(names[c] for c in classes) or "none"
        raise SingleClassError(f"the dataset needs at least two classes in {settings.label_column!r}; "
                               f"found: {found} ({len(frame)} usable rows, {len(bad)} bad rows)")

    if not has_split:
        frame["split"] = _cut(frame, {"test": settings.test_fraction,
                                      "validation": settings.validation_fraction}, "train", settings.seed)
    elif not (frame["split"] == "validation").any() and (frame["split"] == "train").any():
        log.info("source has no validation split: carving %.0f%% of train", 100 * settings.validation_fraction)
        train = frame[frame["split"] == "train"]
        frame.loc[train.index, "split"] = _cut(train, {"validation": settings.validation_fraction},
                                               "train", settings.seed)
    if settings.sample_size:
        frame = _subsample(frame, settings.sample_size, settings.seed)
    for split in SPLITS:
        if not (frame["split"] == split).any():
            where = f"the source's {settings.split_column!r} column" if has_split else "the split"
            raise EmptySplitError(f"split {split!r} is empty after {where} ({len(frame)} usable rows: "
                                  f"{frame['split'].value_counts().to_dict()})")
    order = {s: i for i, s in enumerate(SPLITS)}
    frame = frame.sort_values("split", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return frame, names, bad


def ingest(settings: IngestSettings, output_path: str, card_path: str | None = None) -> IngestResult:
    """Read ``settings.source``, write the dataset to ``output_path`` (Parquet) and the data card.

    Args:
        settings: What to read and how to split it.
        output_path: The Parquet file to write (parent folders are created).
        card_path: Where to write the Markdown data card; None skips it.

    Returns:
        The artifact metadata (labels, rows per split, fingerprint, source, bad-row counts), every
        bad row (record number from 1, reason, offending value) and warnings (e.g. a class missing from a split).

    Raises:
        IngestError: a subclass that names the problem (source, column, class or split).
    """
    started = time.monotonic()
    raw = read_source(settings)
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info("read %d rows from %s in %.1fs (%.0f rows/s)", len(raw), settings.source, elapsed, len(raw) / elapsed)
    frame, names, bad = prepare(raw, settings)

    per_split = {split: int((frame["split"] == split).sum()) for split in SPLITS}
    warnings = [f"class {names[label]!r} has no rows in split {split!r}"
                for split in SPLITS for label in range(len(names))
                if not ((frame["split"] == split) & (frame["label"] == label)).any()]
    for warning in warnings:
        log.warning(warning)
    reasons: dict[str, int] = {}
    for row in bad:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    metadata = {
        "source": settings.source,
        "labels": names,
        "num_rows": len(frame),
        "rows": per_split,
        "fingerprint": fingerprint(frame, names),
        "bad_rows": len(bad),
        "bad_rows_by_reason": reasons,
        "duplicates": duplicate_stats(frame),
    }

    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(output_path, index=False)
    if card_path:
        from textclf.datacard import write_data_card

        write_data_card(card_path, frame, metadata, bad, warnings)
    elapsed = time.monotonic() - started
    log.info("ingested %d rows (%s), %d bad, in %.1fs (%.0f rows/s); fingerprint %s", len(frame),
             ", ".join(f"{k} {v}" for k, v in per_split.items()), len(bad), elapsed,
             (len(raw)) / max(elapsed, 1e-9), metadata["fingerprint"][:12])
    return IngestResult(metadata=metadata, bad_rows=bad, warnings=warnings)
