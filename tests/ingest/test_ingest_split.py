"""Splits (source split, carving validation, stratified seeded split), subsample and fingerprint."""

import pandas as pd
import pytest

from textclf.ingest import IngestSettings, fingerprint, ingest, prepare


def labelled(counts: dict, prefix="text"):
    """Distinct texts: ``counts[label]`` rows per label."""
    return pd.DataFrame([{"text": f"{prefix} {label} {i}", "label": label}
                         for label, n in counts.items() for i in range(n)])


def test_stratified_split_proportions_per_class():
    frame, names, _ = prepare(labelled({"neg": 600, "pos": 200}),
                              IngestSettings(validation_fraction=0.15, test_fraction=0.25))
    counts = pd.crosstab(frame["label"], frame["split"])
    assert counts.loc[names.index("neg")].to_dict() == {"test": 150, "train": 360, "validation": 90}
    assert counts.loc[names.index("pos")].to_dict() == {"test": 50, "train": 120, "validation": 30}


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
    raw = labelled({"a": 100, "b": 100}).assign(split=(["train"] * 3 + ["test"]) * 50)
    frame, _, _ = prepare(raw, IngestSettings(validation_fraction=0.2))
    test_texts = set(raw.loc[raw["split"] == "test", "text"])
    assert set(frame.loc[frame["split"] == "test", "text"]) == test_texts  # test untouched
    assert frame["split"].value_counts().to_dict() == {"train": 120, "test": 50, "validation": 30}
    validation = frame[frame["split"] == "validation"]
    assert validation["label"].value_counts().to_dict() == {0: 15, 1: 15}


def test_sample_size_keeps_proportions_of_splits_and_classes():
    frame, _, _ = prepare(labelled({"a": 750, "b": 250}), IngestSettings(sample_size=200))
    assert len(frame) == 200
    counts = pd.crosstab(frame["split"], frame["label"])
    assert counts.loc["train"].to_list() == [120, 40]
    assert counts.loc["test"].to_list() == [15, 5]


def test_fingerprint_same_data_same_fingerprint_whatever_the_order(tmp_path):
    raw = labelled({"neg": 50, "pos": 50})
    a = ingest(IngestSettings(source=str(write(tmp_path, raw, "a.csv"))), tmp_path / "a.parquet")
    b = ingest(IngestSettings(source=str(write(tmp_path, raw.iloc[::-1], "b.csv"))), tmp_path / "b.parquet")
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
