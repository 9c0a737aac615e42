"""Labels: the vocabulary (names in id order) and the mapping from a raw value to its id.

The vocabulary is a property of the whole label column, so ingest reads that column first (one
cheap pass, ``LabelScan``) unless the names are given (``label_names``, or a hub ClassLabel).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

import pandas as pd

from textclf.data.errors import LabelColumnError

# Pairs whose first (negative) class should be id 0, whatever the alphabet says.
WELL_KNOWN_PAIRS = (("negative", "positive"), ("neg", "pos"), ("ham", "spam"), ("false", "true"), ("no", "yes"))
# A classification label column has a few to a few thousand values; far more means a wrong column
# (a text or an id), and counting them would grow with the data.
MAX_LABEL_VALUES = 10_000


def integral(value) -> int | None:
    """The value as an int when it is one (1, 1.0, "1", numpy ints), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def is_missing(value) -> bool:
    """None, NaN, pd.NA or a blank string."""
    if isinstance(value, str):
        return not value.strip()
    return pd.api.types.is_scalar(value) and bool(pd.isna(value))


def label_vocabulary(values, label_names: list[str] | None = None) -> tuple[list[str], dict]:
    """Return (names, lookup): names in id order, lookup from a raw label value to its id.

    ``values`` are the column's values (each distinct value once is enough). With ``label_names``:
    ints 0..K-1 and the names themselves are accepted, anything else is unknown. Without: ints keep
    their value when they are exactly 0..K-1 (else sorted ids), names are their strings; strings are
    sorted, except well-known pairs (negative/positive, neg/pos, ham/spam, false/true, no/yes) whose
    negative class is id 0 whatever the case.
    """
    if label_names:
        lookup: dict[Hashable, int] = {name: i for i, name in enumerate(label_names)}
        lookup.update({i: i for i in range(len(label_names))})
        return list(label_names), lookup
    present = [v for v in values if not is_missing(v)]
    ints = {integral(v) for v in present}
    whole = {i for i in ints if i is not None}
    if present and len(whole) == len(ints):  # every value is an integer
        ordered = sorted(whole)
        names = [str(v) for v in ordered]
        return names, {v: i for i, v in enumerate(ordered)}
    strings = sorted({str(v).strip() for v in present})
    lowered = tuple(sorted(s.lower() for s in strings))
    for pair in WELL_KNOWN_PAIRS:
        if lowered == tuple(sorted(pair)):
            strings = sorted(strings, key=lambda s: pair.index(s.lower()))
    return strings, {name: i for i, name in enumerate(strings)}


def label_id(value, lookup: dict) -> int | None:
    """The id of a raw label value, None when it is not in the vocabulary."""
    if isinstance(value, str):
        value = value.strip()
        if value in lookup:
            return lookup[value]
    number = integral(value)
    if number is not None and number in lookup:
        return lookup[number]
    return lookup.get(str(value))


class LabelMapper:
    """``label_id`` with a memo: a label column repeats a handful of values millions of times."""

    def __init__(self, lookup: dict):
        self.lookup = lookup
        self._memo: dict = {}

    def __call__(self, value) -> int | None:
        try:
            return self._memo[value]
        except KeyError:
            found = self._memo[value] = label_id(value, self.lookup)
            if len(self._memo) > MAX_LABEL_VALUES:  # a column of distinct values: stop remembering
                self._memo.clear()
            return found
        except TypeError:  # unhashable (a list in JSON): looked up by its text
            return label_id(value, self.lookup)


class LabelScan:
    """The first pass: how many rows have each (label value, split) pair; bounded by the distinct values.

    ``split`` is the row's split after aliases (None: unknown value or no split column). The pairs
    give the vocabulary, the splits the source has, and how many rows are usable before texts are read.
    """

    def __init__(self, label_column: str):
        self.label_column = label_column
        self.pairs: Counter = Counter()

    def add(self, labels: pd.Series, splits: list | None) -> None:
        values = [v if isinstance(v, Hashable) else repr(v) for v in labels.tolist()]
        self.pairs.update(zip(values, splits if splits is not None else [None] * len(values)))
        if len(self.pairs) > MAX_LABEL_VALUES:
            examples = ", ".join(repr(v)[:30] for (v, _), _ in self.pairs.most_common(3))
            raise LabelColumnError(
                f"label_column {self.label_column!r} has more than {MAX_LABEL_VALUES} distinct "
                f"values (e.g. {examples}): it does not look like a class label; check "
                "label_column"
            )

    def values(self) -> list:
        """The distinct label values (missing ones included; ``label_vocabulary`` leaves them out)."""
        return list(dict.fromkeys(value for value, _ in self.pairs))

    def splits(self) -> set[str]:
        """The known split values present in the source."""
        return {split for (_, split), _ in self.pairs.items() if split is not None}

    def usable_rows(self, mapper: LabelMapper, needs_split: bool) -> int:
        """Rows with a known label (and a known split when the source has a split column)."""
        return sum(
            count
            for (value, split), count in self.pairs.items()
            if not is_missing(value) and mapper(value) is not None and (split is not None or not needs_split)
        )
