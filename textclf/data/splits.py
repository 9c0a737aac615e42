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
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "validation", "test")
SPLIT_CODE = {name: code for code, name in enumerate(SPLITS)}
SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "development": "validation",
    "test": "test", "testing": "test",
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


@dataclass(frozen=True)
class SplitRule:
    """How rows get their split.

    ``source_splits``: the source has a split column, used as it is; with ``carve_validation`` (the
    source has train and test but no validation), validation is carved from train by the hash.
    """

    test_fraction: float
    validation_fraction: float
    seed: int
    source_splits: bool = False
    carve_validation: bool = False

    def assign(self, keys: np.ndarray, source_codes: np.ndarray | None) -> np.ndarray:
        """Split codes (``SPLIT_CODE``) for rows with these keys (and source split codes, when the source has them)."""
        draw = uniform(keys, self.seed, SPLIT_SALT)
        if not self.source_splits:
            codes = np.full(len(keys), SPLIT_CODE["train"], dtype=np.int8)
            codes[draw < self.test_fraction + self.validation_fraction] = SPLIT_CODE["validation"]
            codes[draw < self.test_fraction] = SPLIT_CODE["test"]
            return codes
        codes = np.asarray(source_codes, dtype=np.int8).copy()
        if self.carve_validation:
            codes[(codes == SPLIT_CODE["train"]) & (draw < self.validation_fraction)] = SPLIT_CODE["validation"]
        return codes


def sample_mask(keys: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Which rows a subsample at ``rate`` (0..1] keeps: the same rows whatever their order."""
    if rate >= 1:
        return np.ones(len(keys), dtype=bool)
    return uniform(keys, seed, SAMPLE_SALT) < rate
