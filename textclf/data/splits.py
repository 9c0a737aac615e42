"""Which split a row lands in, and whether a subsample keeps it: decided by hashes, row by row.

Each row's normalised text (``normalise``) has a 64-bit key (``text_key``). Seeded, well-mixed
uniform numbers in [0, 1) are derived from the key (``uniform``): one for the split, one for the
subsample. A row goes to ``test`` when its split number is below ``test_fraction``, to
``validation`` below ``test_fraction + validation_fraction``, else to ``train`` (TFX ExampleGen's
hash buckets, in the same spirit). So:

* a row's split depends only on its text and the seed: not on row order, chunking or sharding, and
  equal texts (after normalising) always land in the same split (no leakage by duplicates);
* adding rows never moves existing rows between splits, so a model trained on an older export has
  not seen the newer export's test rows;
* per class, the split is stratified in expectation, not exactly: the share of a class in a split
  is binomial around the fraction (for 10,000 rows of a class and a 10% test fraction, 1,000 +- 60
  at two standard deviations). Exact per-class cuts need every row's hash before the first row is
  written, i.e. the data held or read twice more; at the sizes this pipeline is for, the
  difference is noise.

``sample_size`` keeps a row when its sample number is below ``sample_size / usable rows``: about
``sample_size`` rows, stratified the same way, and a smaller sample is contained in a larger one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from textclf.data.errors import SplitNameError

SPLITS = ("train", "validation", "test")
SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "development": "validation",
    "test": "test",
    "testing": "test",
}
# The words that make a file or folder name a split, as Hugging Face ``datasets`` reads ``data_files``
# (datasets/data_files.py: SPLIT_KEYWORDS, NON_WORDS_CHARS): the word with the name's edge or one of
# ``-._ `` or a digit on each side, so ``train.csv``, ``my-test_2.csv`` and ``dev/`` name splits and
# ``latest.csv``, ``interval.csv`` or ``trainer/`` do not.
NAME_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_NAME_SEPARATORS = r"\-._ 0-9"
_NAME_PATTERNS = {
    split: re.compile(rf"(?<![^{_NAME_SEPARATORS}])(?:{'|'.join(words)})(?![^{_NAME_SEPARATORS}])", re.IGNORECASE)
    for split, words in NAME_KEYWORDS.items()
}
SPLIT_SALT, SAMPLE_SALT = 1, 2
_MASK64 = (1 << 64) - 1


def normalise(text: str) -> str:
    """Lower-case, whitespace collapsed: what counts as 'the same text' for duplicates."""
    return " ".join(text.lower().split())


def text_key(normalised: str) -> int:
    """64-bit key of a normalised text (BLAKE2b): equal keys are equal texts, for duplicates and splits."""
    return int.from_bytes(hashlib.blake2b(normalised.encode(), digest_size=8).digest(), "little")


def split_alias(value) -> str | None:
    """``train``/``validation``/``test`` for a source's split value (also ``dev``, ``val``...); None if unknown."""
    return SPLIT_ALIASES.get(str(value).strip().lower())


def _named_in(component: str) -> list[str]:
    return [split for split, pattern in _NAME_PATTERNS.items() if pattern.search(component)]


def split_from_name(relative: str) -> str | None:
    """The split a data file's path below the source's folder names: ``train``, ``validation``,
    ``test`` or None (no folder and not the file name name one).

    Folders and the file name are read as Hugging Face ``datasets`` reads them (``NAME_KEYWORDS``):
    ``train.csv``, ``data/test-00000-of-00001.parquet``, ``dev/part-0.csv.gz``.

    Raises:
        SplitNameError: the path names two splits, e.g. ``train_test.csv`` or ``test/train.csv``.
    """
    named: dict[str, str] = {}
    for component in PurePosixPath(relative).parts:
        for split in _named_in(component):
            named.setdefault(split, component)
    if len(named) > 1:
        found = ", ".join(f"{split} (in {component!r})" for split, component in named.items())
        raise SplitNameError(
            f"{relative} names more than one split: {found}; rename it, or give the rows a split column"
        )
    return next(iter(named), None)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijective mix of 64-bit integers (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniform(keys: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A number in [0, 1) per key: a function of (key, seed, salt) only, well spread for any seed."""
    stream = _splitmix64(np.array([(seed * 1_000_003 + salt) & _MASK64], dtype=np.uint64))[0]
    mixed = _splitmix64(np.asarray(keys, dtype=np.uint64) ^ stream)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def carved_splits(present: set[str]) -> tuple[str, ...]:
    """The splits a source with its own splits lacks and that are carved from its train rows: the source's
    validation and test rows are never moved, and none of them ever goes to train."""
    return tuple(split for split in ("validation", "test") if split not in present) if "train" in present else ()


@dataclass(frozen=True)
class SplitRule:
    """How rows get their split.

    ``source_splits``: the source has its splits (a split column, or file names), used as they are;
    the splits in ``carve`` (those the source lacks) are carved from its train rows by the hash: a
    train row goes to test when its split number is below ``test_fraction`` (test carved), to
    validation when it is below ``validation_fraction`` (validation carved alone) or in
    ``[test_fraction, test_fraction + validation_fraction)`` (both carved).
    """

    test_fraction: float
    validation_fraction: float
    seed: int
    source_splits: bool = False
    carve: tuple[str, ...] = ()

    def assign(self, keys: np.ndarray, source_codes: np.ndarray | None) -> np.ndarray:
        """Split codes (``SPLIT_CODE``) for rows with these keys (and source split codes, when the source has them)."""
        draw = uniform(keys, self.seed, SPLIT_SALT)
        if not self.source_splits:
            codes = np.full(len(keys), SPLIT_CODE["train"], dtype=np.int8)
            codes[draw < self.test_fraction + self.validation_fraction] = SPLIT_CODE["validation"]
            codes[draw < self.test_fraction] = SPLIT_CODE["test"]
            return codes
        codes = np.asarray(source_codes, dtype=np.int8).copy()
        train = codes == SPLIT_CODE["train"]
        test_below = self.test_fraction if "test" in self.carve else 0.0
        if "validation" in self.carve:
            codes[train & (draw >= test_below) & (draw < test_below + self.validation_fraction)] = SPLIT_CODE[
                "validation"
            ]
        if test_below:
            codes[train & (draw < test_below)] = SPLIT_CODE["test"]
        return codes


def sample_mask(keys: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Which rows a subsample at ``rate`` (0..1] keeps: the same rows whatever their order."""
    if rate >= 1:
        return np.ones(len(keys), dtype=bool)
    return uniform(keys, seed, SAMPLE_SALT) < rate
