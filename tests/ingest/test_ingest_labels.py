"""Label mapping, bad rows and the named errors of ``components.ingest``."""

import pandas as pd
import pytest

from textclf.ingest import (
    EmptySplitError,
    IngestSettings,
    MissingColumnError,
    SingleClassError,
    SourceError,
    ingest,
    label_vocabulary,
    prepare,
)


def balanced(labels, per_class=20):
    """A frame of distinct texts, ``per_class`` rows for each label value."""
    return pd.DataFrame(
        [{"text": f"review {label} number {i}", "label": label} for label in labels for i in range(per_class)]
    )


@pytest.mark.parametrize(
    "values, expected",
    [
        (["pos", "neg", "pos"], ["neg", "pos"]),
        (["Positive", "negative"], ["negative", "Positive"]),
        (["spam", "ham"], ["ham", "spam"]),
        (["yes", "no"], ["no", "yes"]),
        (["sports", "business", "world"], ["business", "sports", "world"]),  # plain sorted order
    ],
)
def test_string_labels_sorted_with_negative_class_first_for_well_known_pairs(values, expected):
    names, lookup = label_vocabulary(values)
    assert names == expected
    assert [lookup[name] for name in expected] == list(range(len(expected)))


def test_int_labels_keep_their_value_when_contiguous_from_zero():
    names, lookup = label_vocabulary([1, 0, 2, 1])
    assert names == ["0", "1", "2"]
    assert lookup == {0: 0, 1: 1, 2: 2}


def test_int_labels_not_starting_at_zero_are_renumbered_in_order():
    names, lookup = label_vocabulary([5, 1, 3])
    assert names == ["1", "3", "5"]
    assert lookup == {1: 0, 3: 1, 5: 2}


def test_label_names_setting_names_int_labels_and_accepts_the_names():
    frame, names, bad = prepare(balanced([0, 1]), IngestSettings(label_names="negative,positive"))
    assert names == ["negative", "positive"]
    assert sorted(frame["label"].unique()) == [0, 1]
    assert bad == []
    # The names themselves map too, and anything else is an unknown label.
    raw = pd.DataFrame({"text": ["a", "b", "c", "d", "e"], "label": ["positive", 0, "1", 7, "meh"]})
    _, _, bad = prepare(
        pd.concat([balanced([0, 1]), raw], ignore_index=True), IngestSettings(label_names="negative,positive")
    )
    assert [(b["row"], b["reason"]) for b in bad] == [(44, "unknown label"), (45, "unknown label")]


def test_labels_in_output_match_their_names(tmp_path):
    ingest(
        IngestSettings(
            source=str(write_csv(tmp_path, balanced(["pos", "neg"]))),
        ),
        tmp_path / "d",
    )
    out = pd.read_parquet(tmp_path / "d")
    assert out["label"].dtype == "int64"
    assert set(out.loc[out["text"].str.contains("review neg"), "label"]) == {0}
    assert set(out.loc[out["text"].str.contains("review pos"), "label"]) == {1}


def write_csv(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_bad_rows_are_counted_and_listed_with_record_numbers(tmp_path):
    raw = pd.concat(
        [
            pd.DataFrame(
                {"text": ["", "   ", None, "fine text", "no label"], "label": ["pos", "neg", "pos", "pos", None]}
            ),
            balanced(["pos", "neg"]),
        ],
        ignore_index=True,
    )
    path = write_csv(tmp_path, raw)
    result = ingest(IngestSettings(source=str(path)), tmp_path / "d", tmp_path / "card.md")
    assert [(b["row"], b["reason"]) for b in result.bad_rows] == [
        (1, "missing text"),
        (2, "missing text"),
        (3, "missing text"),
        (5, "missing label"),
    ]
    assert result.metadata["bad_rows"] == 4
    assert result.metadata["bad_rows_by_reason"] == {"missing text": 3, "missing label": 1}
    out = pd.read_parquet(tmp_path / "d")
    assert len(out) == len(raw) - 4 and "fine text" in set(out["text"])
    assert (out["text"].str.strip() != "").all()
    card = (tmp_path / "card.md").read_text()
    assert "| 5 | missing label |" in card and "| 1 | missing text |" in card


def test_missing_column_error_names_the_column():
    with pytest.raises(MissingColumnError, match="label_column 'sentiment'.*columns are: text, label"):
        prepare(balanced(["a", "b"]), IngestSettings(label_column="sentiment"))
    with pytest.raises(MissingColumnError, match="text_column 'review'"):
        prepare(balanced(["a", "b"]), IngestSettings(text_column="review"))


def test_single_class_is_an_error_that_names_the_class():
    raw = pd.concat([balanced(["pos"]), pd.DataFrame({"text": [""], "label": ["neg"]})], ignore_index=True)
    with pytest.raises(SingleClassError, match="at least two classes.*found: pos"):
        prepare(raw, IngestSettings())


def test_empty_source_split_is_an_error_that_names_the_split():
    raw = balanced(["a", "b"]).assign(split="test")
    raw.loc[::2, "split"] = "validation"  # validation + test, but no train rows to learn from (or carve)
    with pytest.raises(EmptySplitError, match="split 'train' is empty after the source's 'split' column"):
        prepare(raw, IngestSettings())


def test_too_few_rows_to_split_is_an_empty_split_error():
    with pytest.raises(EmptySplitError, match="split '(validation|test)' is empty"):
        prepare(balanced(["a", "b"], per_class=2), IngestSettings())


def test_unknown_split_values_are_bad_rows():
    raw = balanced(["a", "b"]).assign(split=["train", "dev", "test", "holdout"] * 10)
    frame, _, bad = prepare(raw, IngestSettings())
    assert {b["reason"] for b in bad} == {"unknown split"} and len(bad) == 10
    assert [b["row"] for b in bad[:2]] == [4, 8]


def test_settings_reject_fractions_that_leave_no_train():
    with pytest.raises(ValueError, match="validation_fraction"):
        IngestSettings(validation_fraction=0)
    with pytest.raises(ValueError, match="leave rows for train"):
        IngestSettings(validation_fraction=0.5, test_fraction=0.5)


def test_unsupported_source_is_a_source_error(tmp_path):
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(SourceError, match="unsupported file type .xlsx"):
        ingest(IngestSettings(source=str(tmp_path / "data.xlsx")), tmp_path / "d")
    with pytest.raises(SourceError, match="not found"):
        ingest(IngestSettings(source=str(tmp_path / "missing.csv")), tmp_path / "d")
    with pytest.raises(SourceError, match="unsupported source scheme 'pvc'"):  # no fsspec store reads pvc://
        ingest(IngestSettings(source="pvc://volume/data.csv"), tmp_path / "d")
