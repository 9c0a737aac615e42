"""Splits from file and folder names (train*, validation*/valid*/dev*, test*), as Hugging Face
``datasets`` reads ``data_files``: local folders and globs, and gs:// on the storage emulator."""

import pandas as pd
import pytest

from textclf.data.shards import Layout
from textclf.data.splits import split_from_name
from textclf.ingest import EmptySplitError, IngestSettings, SplitNameError, ingest

try:  # the cloud tests' real gcp-storage-emulator fixtures
    from tests.cloud.conftest import gcs_bucket, gcs_emulator_url  # noqa: F401

    GCS_MISSING = None
except ImportError as error:
    GCS_MISSING = f"no storage emulator: {error}"


def rows(prefix: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"{prefix} question number {i}" for i in range(n)],
            "label": ["LOC" if i % 3 else "HUM" for i in range(n)],
        }
    )


def write(folder, name: str, frame: pd.DataFrame):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    return path


def split_texts(out) -> dict[str, set[str]]:
    frame = pd.read_parquet(out)
    return {split: set(frame.loc[frame["split"] == split, "text"]) for split in ("train", "validation", "test")}


@pytest.mark.parametrize(
    "path, split",
    [
        ("train.csv", "train"),
        ("test.csv.gz", "test"),
        ("my-test_2.csv", "test"),
        ("Train.CSV", "train"),
        ("training_set.tsv", "train"),
        ("validation.jsonl", "validation"),
        ("valid.csv", "validation"),
        ("dev/part-0.csv", "validation"),
        ("x/val/a.csv", "validation"),
        ("eval.csv", "test"),
        ("data/test-00000-of-00001.parquet", "test"),
        ("train/part-00001.csv.gz", "train"),
        ("latest.csv", None),
        ("interval.csv", None),
        ("medieval.csv", None),
        ("trainer/x.csv", None),
        ("part-0.csv", None),
        ("contestant.csv", None),
    ],
)
def test_file_and_folder_names_give_the_split_as_hugging_face_datasets_reads_them(path, split):
    assert split_from_name(path) == split


@pytest.mark.parametrize("path", ["train_test.csv", "test/train.csv", "dev-eval.csv"])
def test_a_path_that_names_two_splits_is_an_error(path):
    with pytest.raises(SplitNameError, match="names more than one split"):
        split_from_name(path)


def test_a_glob_of_train_and_test_files_keeps_the_test_file_as_test_and_carves_validation_from_train(tmp_path):
    train, test = rows("train", 400), rows("test", 60)
    write(tmp_path, "data/train.csv", train)
    write(tmp_path, "data/test.csv", test)
    result = ingest(
        IngestSettings(source=str(tmp_path / "data" / "*.csv"), validation_fraction=0.2),
        tmp_path / "out",
        tmp_path / "card.md",
    )
    found = split_texts(tmp_path / "out")
    assert found["test"] == set(test["text"]), "the test file is the test split, whole and alone"
    assert found["train"] | found["validation"] == set(train["text"]), "nothing of the test file is trained on"
    assert 40 <= len(found["validation"]) <= 120  # 20% of 400, binomial noise
    meta = result.metadata
    assert meta["split_origin"] == "file names" and meta["carved_splits"] == ["validation"]
    assert meta["split_files"] == {
        str(tmp_path / "data" / "test.csv"): "test",
        str(tmp_path / "data" / "train.csv"): "train",
    }
    card = (tmp_path / "card.md").read_text()
    assert "- Splits: the file names (" in card and "validation carved from its train rows" in card


def test_a_folder_of_split_folders_takes_each_folders_split_and_carves_nothing(tmp_path):
    parts = {
        "train/part-0.csv": rows("a", 50),
        "train/part-1.csv": rows("b", 50),
        "dev/part-0.jsonl": rows("c", 20),
        "test/part-0.csv": rows("d", 20),
    }
    for name, frame in parts.items():
        write(tmp_path / "export", name, frame)
    (tmp_path / "export" / "_SUCCESS").write_text("")
    result = ingest(IngestSettings(source=str(tmp_path / "export")), tmp_path / "out", layout=Layout(chunk_rows=7))
    found = split_texts(tmp_path / "out")
    assert found == {
        "train": set(parts["train/part-0.csv"]["text"]) | set(parts["train/part-1.csv"]["text"]),
        "validation": set(parts["dev/part-0.jsonl"]["text"]),
        "test": set(parts["test/part-0.csv"]["text"]),
    }
    assert result.metadata["carved_splits"] == [] and result.metadata["rows"] == {
        "train": 100,
        "validation": 20,
        "test": 20,
    }


def test_a_source_without_a_test_file_gets_test_carved_from_train_never_from_validation(tmp_path):
    train, validation = rows("train", 500), rows("validation", 40)
    write(tmp_path, "train.csv", train)
    write(tmp_path, "validation.csv", validation)
    result = ingest(IngestSettings(source=str(tmp_path / "*.csv"), test_fraction=0.1), tmp_path / "out")
    found = split_texts(tmp_path / "out")
    assert found["validation"] == set(validation["text"])
    assert found["test"] and found["test"] | found["train"] == set(train["text"])
    assert result.metadata["carved_splits"] == ["test"]


def test_a_glob_that_mixes_named_and_unnamed_files_is_a_named_error(tmp_path):
    write(tmp_path, "train.csv", rows("train", 30))
    write(tmp_path, "test.csv", rows("test", 10))
    write(tmp_path, "extra.csv", rows("extra", 10))
    with pytest.raises(
        SplitNameError, match=r"test\.csv \(test\) but not of .*extra\.csv \(1 of 3 files name no split\)"
    ):
        ingest(IngestSettings(source=str(tmp_path / "*.csv")), tmp_path / "out")


def test_files_with_a_split_column_keep_it_whatever_their_names(tmp_path):
    frame = rows("x", 90).assign(split=["train", "validation", "test"] * 30)
    write(tmp_path, "d/train.csv", frame.iloc[:60])
    write(tmp_path, "d/test.csv", frame.iloc[60:])
    result = ingest(IngestSettings(source=str(tmp_path / "d")), tmp_path / "out")
    got = pd.read_parquet(tmp_path / "out")
    assert dict(zip(got["text"], got["split"])) == dict(zip(frame["text"], frame["split"]))
    assert result.metadata["split_origin"] == "column"


def test_one_file_is_split_by_hash_whatever_its_name(tmp_path):
    write(tmp_path, "test.csv", rows("only", 300))
    result = ingest(IngestSettings(source=str(tmp_path / "test.csv")), tmp_path / "out")
    assert result.metadata["split_origin"] == "hash" and all(result.metadata["rows"].values())


def test_names_above_the_folder_or_glob_do_not_count(tmp_path):
    """Only the path below the source's folder or glob root names splits: a project kept in a folder called
    test/ is not all test data."""
    for name in ("a.csv", "b.csv"):
        write(tmp_path / "test" / "project", name, rows(name, 150))
    result = ingest(IngestSettings(source=str(tmp_path / "test" / "project" / "*.csv")), tmp_path / "out")
    assert result.metadata["split_origin"] == "hash"


def test_a_source_with_only_test_files_has_no_train_split(tmp_path):
    write(tmp_path, "test-0.csv", rows("a", 30))
    write(tmp_path, "test-1.csv", rows("b", 30))
    with pytest.raises(EmptySplitError, match=r"split 'train' is empty after the file names \(test: 2 files\)"):
        ingest(IngestSettings(source=str(tmp_path / "test-*.csv")), tmp_path / "out")


@pytest.mark.skipif(GCS_MISSING is not None, reason=str(GCS_MISSING))
def test_gs_globs_and_prefixes_take_the_split_from_object_names(tmp_path, request):
    bucket = request.getfixturevalue("gcs_bucket")
    train, test = rows("train", 200), rows("test", 30)
    for name, frame in (("train.csv", train), ("test.csv", test)):
        bucket.blob(f"exports/trec/{name}").upload_from_string(frame.to_csv(index=False))
    for source in (f"gs://{bucket.name}/exports/trec/*.csv", f"gs://{bucket.name}/exports/trec/"):
        out = tmp_path / source.rstrip("/").rsplit("/", 1)[-1].replace("*", "glob")
        result = ingest(IngestSettings(source=source), out)
        assert split_texts(out)["test"] == set(test["text"])
        assert result.metadata["split_files"] == {
            f"gs://{bucket.name}/exports/trec/test.csv": "test",
            f"gs://{bucket.name}/exports/trec/train.csv": "train",
        }
