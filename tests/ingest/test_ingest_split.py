"""Splits (source split, carving validation, hash-based seeded split), subsample and fingerprint."""

import math

import pandas as pd
import pytest

from textclf.ingest import IngestSettings, fingerprint, ingest, prepare


def labelled(counts: dict, prefix="text"):
    """Distinct texts: ``counts[label]`` rows per label."""
    return pd.DataFrame(
        [{"text": f"{prefix} {label} {i}", "label": label} for label, n in counts.items() for i in range(n)]
    )


def within(count: int, n: int, fraction: float, sd: float = 4.0) -> bool:
    """``count`` of ``n`` rows is within ``sd`` binomial standard deviations of ``n * fraction``."""
    return abs(count - n * fraction) <= sd * math.sqrt(n * fraction * (1 - fraction))


def test_split_is_stratified_in_expectation_per_class():
    """Each row's split comes from its own hash, so each class is split at the fractions up to binomial noise."""
    frame, names, _ = prepare(
        labelled({"neg": 6000, "pos": 2000}), IngestSettings(validation_fraction=0.15, test_fraction=0.25)
    )
    counts = pd.crosstab(frame["label"], frame["split"])
    for name, n in (("neg", 6000), ("pos", 2000)):
        row = counts.loc[names.index(name)]
        assert row.sum() == n
        assert within(row["test"], n, 0.25) and within(row["validation"], n, 0.15), row.to_dict()


def test_a_rows_split_does_not_change_when_rows_are_added():
    """The split of a text depends on the text and the seed only: a new export keeps old rows where they were,
    so a model trained on the old export never saw the new export's test rows."""
    old, _, _ = prepare(labelled({"a": 300, "b": 300}), IngestSettings())
    grown, _, _ = prepare(
        pd.concat([labelled({"a": 300, "b": 300}), labelled({"a": 500, "b": 500}, prefix="new")]), IngestSettings()
    )
    grown_split = dict(zip(grown["text"], grown["split"]))
    assert all(grown_split[text] == split for text, split in zip(old["text"], old["split"]))


def test_split_is_seeded_and_independent_of_row_order():
    raw = labelled({"a": 100, "b": 100})
    first, _, _ = prepare(raw, IngestSettings(seed=1))
    shuffled, _, _ = prepare(raw.sample(frac=1, random_state=3), IngestSettings(seed=1))
    other_seed, _, _ = prepare(raw, IngestSettings(seed=2))
    as_map = lambda f: dict(zip(f["text"], f["split"]))  # noqa: E731
    assert as_map(first) == as_map(shuffled)
    assert as_map(first) != as_map(other_seed)


def test_duplicate_texts_land_in_one_split():
    raw = pd.concat([labelled({"a": 100, "b": 100})] * 2, ignore_index=True)
    raw.loc[:199, "text"] = raw.loc[:199, "text"].str.upper()  # same text after normalising case
    frame, _, _ = prepare(raw, IngestSettings())
    assert (frame.groupby(frame["text"].str.lower())["split"].nunique() == 1).all()


def test_source_split_column_is_used_with_aliases():
    raw = labelled({"a": 30, "b": 30}).assign(split=["training", "dev", "TEST"] * 20)
    frame, _, bad = prepare(raw, IngestSettings())
    assert bad == []
    expected = raw["split"].str.lower().map({"training": "train", "dev": "validation", "test": "test"})
    assert dict(zip(frame["text"], frame["split"])) == dict(zip(raw["text"], expected))


def test_validation_is_carved_from_train_when_source_has_train_and_test_only():
    raw = labelled({"a": 1000, "b": 1000}).assign(split=(["train"] * 3 + ["test"]) * 500)
    frame, _, _ = prepare(raw, IngestSettings(validation_fraction=0.2))
    test_texts = set(raw.loc[raw["split"] == "test", "text"])
    assert set(frame.loc[frame["split"] == "test", "text"]) == test_texts  # test untouched
    counts = frame["split"].value_counts().to_dict()
    assert counts["test"] == 500 and counts["train"] + counts["validation"] == 1500
    assert within(counts["validation"], 1500, 0.2)
    validation = frame[frame["split"] == "validation"]
    for label in (0, 1):
        assert within((validation["label"] == label).sum(), 750, 0.2)


def test_sample_size_keeps_about_that_many_rows_in_proportion():
    raw = labelled({"a": 7500, "b": 2500})
    frame, _, _ = prepare(raw, IngestSettings(sample_size=2000))
    assert within(len(frame), 10_000, 0.2)
    assert within((frame["label"] == 0).sum(), 7500, 0.2) and within((frame["label"] == 1).sum(), 2500, 0.2)
    assert within((frame["split"] == "test").sum(), len(frame), 0.1)
    smaller, _, _ = prepare(raw.sample(frac=1, random_state=1), IngestSettings(sample_size=500))
    assert set(smaller["text"]) < set(frame["text"]), "a smaller sample is part of a larger one, whatever the row order"


def test_fingerprint_same_data_same_fingerprint_whatever_the_order(tmp_path):
    raw = labelled({"neg": 50, "pos": 50})
    a = ingest(IngestSettings(source=str(write(tmp_path, raw, "a.csv"))), tmp_path / "a")
    b = ingest(IngestSettings(source=str(write(tmp_path, raw.iloc[::-1], "b.csv"))), tmp_path / "b")
    assert a.metadata["fingerprint"] == b.metadata["fingerprint"]
    assert len(a.metadata["fingerprint"]) == 64


@pytest.mark.parametrize("change", ["text", "label", "row", "seed", "label_names"])
def test_fingerprint_changes_with_the_data(change):
    raw = labelled({"0": 50, "1": 50})
    settings = IngestSettings(label_names="negative,positive")
    base, names, _ = prepare(raw, settings)
    changed = raw.copy()
    if change == "text":
        changed.loc[7, "text"] += "!"
    elif change == "label":
        changed.loc[7, "label"] = "1"
    elif change == "row":
        changed = changed.drop(index=7)
    elif change == "seed":
        settings = IngestSettings(label_names="negative,positive", seed=7)
    else:
        settings = IngestSettings(label_names="bad,good")
    other, other_names, _ = prepare(changed, settings)
    assert fingerprint(base, names) != fingerprint(other, other_names)


def write(tmp_path, frame, name):
    frame.to_csv(tmp_path / name, index=False)
    return tmp_path / name
