"""Ingest in bounded memory on small data through the real code paths: chunked reads, sharded
sources (folders, globs, mixed formats), the shard layout of the output, and the named errors of
files that cannot be read (bytes not in the encoding, empty files)."""

import gzip
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest

from textclf.data.shards import Layout, iter_split
from textclf.ingest import EmptySourceError, IngestSettings, SourceEncodingError, SourceError, ingest
from textclf.sample_data import generate

SMALL = Layout(chunk_rows=7, row_group_rows=40, shard_rows=100)
ONE_CHUNK = Layout(chunk_rows=1_000_000, row_group_rows=40, shard_rows=100)


@pytest.fixture(scope="module")
def reviews():
    """400 generated reviews with duplicates (case and spacing changed) and bad rows mixed in."""
    frame = pd.DataFrame(generate(400, seed=11))
    copies = frame.iloc[::37].assign(text=lambda f: "  " + f["text"].str.upper())
    bad = pd.DataFrame({"text": ["", "a text without label", None], "label": ["positive", None, "negative"]})
    return pd.concat([frame, copies, bad], ignore_index=True).sample(frac=1, random_state=2).reset_index(drop=True)


def files_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_chunked_ingest_writes_byte_identical_shards_and_the_same_fingerprint(tmp_path, reviews):
    reviews.to_csv(tmp_path / "reviews.csv", index=False)
    settings = IngestSettings(source=str(tmp_path / "reviews.csv"))
    chunked = ingest(settings, tmp_path / "chunked", tmp_path / "chunked.md", layout=SMALL)
    whole = ingest(settings, tmp_path / "whole", tmp_path / "whole.md", layout=ONE_CHUNK)

    assert chunked.metadata == whole.metadata
    assert files_of(tmp_path / "chunked") == files_of(tmp_path / "whole")
    assert (tmp_path / "chunked.md").read_text() == (tmp_path / "whole.md").read_text()
    assert len(files_of(tmp_path / "chunked")) > 3, "several shards per split at shard_rows=100"


def test_a_folder_of_shards_gives_the_same_dataset_as_the_one_file(tmp_path, reviews):
    """The same rows exported as a folder of mixed-format shards (with Spark's marker files)."""
    reviews.to_csv(tmp_path / "all.csv", index=False)
    export = tmp_path / "export"
    export.mkdir()
    parts = [reviews.iloc[:150], reviews.iloc[150:300], reviews.iloc[300:]]
    parts[0].to_csv(export / "part-0.csv.gz", index=False, compression="gzip")
    parts[1].to_parquet(export / "part-1.parquet", index=False)
    parts[2].to_json(export / "part-2.jsonl", orient="records", lines=True)
    (export / "_SUCCESS").write_text("")
    (export / ".part-0.csv.gz.crc").write_bytes(b"\x00\x01")

    one = ingest(IngestSettings(source=str(tmp_path / "all.csv")), tmp_path / "one", layout=SMALL)
    folder = ingest(IngestSettings(source=str(export)), tmp_path / "folder", layout=SMALL)
    glob = ingest(IngestSettings(source=str(export / "part-*")), tmp_path / "glob", layout=SMALL)

    assert folder.metadata["source_files"] == glob.metadata["source_files"] == 3
    for result in (folder, glob):
        assert result.metadata["fingerprint"] == one.metadata["fingerprint"]
        assert result.metadata["rows"] == one.metadata["rows"]
        assert result.metadata["duplicates"] == one.metadata["duplicates"]
    assert files_of(tmp_path / "folder") == files_of(tmp_path / "one")
    # bad rows name their file when there are several
    assert {b["file"] for b in folder.bad_rows} <= {
        str(export / n) for n in ("part-0.csv.gz", "part-1.parquet", "part-2.jsonl")
    }


def test_duplicates_and_leakage_are_counted_across_chunk_boundaries(tmp_path):
    """Copies sit in other chunks (chunk_rows=3) and, through the source's split column, in other splits."""
    texts = [f"review number {i} with some words" for i in range(30)]
    rows = [{"text": t, "label": i % 2, "split": "train"} for i, t in enumerate(texts)]
    rows += [{"text": t.upper(), "label": i % 2, "split": "test"} for i, t in enumerate(texts[:5])]  # leakage
    rows += [
        {"text": t + "  ", "label": 1 - i % 2, "split": "train"} for i, t in enumerate(texts[5:8], 5)
    ]  # label conflicts
    rows += [{"text": t, "label": i % 2, "split": "validation"} for i, t in enumerate(texts[20:], 20)]  # leakage
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    result = ingest(IngestSettings(source=str(tmp_path / "d.csv")), tmp_path / "out", layout=Layout(chunk_rows=3))

    frame = pd.read_parquet(tmp_path / "out")
    key = frame["text"].str.lower().str.split().str.join(" ")
    grouped = frame.assign(key=key).groupby("key")
    expected = {
        "duplicate_rows": int(key.duplicated().sum()),
        "cross_split_texts": int((grouped["split"].nunique() > 1).sum()),
        "conflicting_label_texts": int((grouped["label"].nunique() > 1).sum()),
    }
    assert (
        result.metadata["duplicates"]
        == expected
        == {"duplicate_rows": 18, "cross_split_texts": 15, "conflicting_label_texts": 3}
    )


def test_output_shards_have_the_layouts_row_groups_and_read_back_in_order(tmp_path, reviews):
    reviews.to_csv(tmp_path / "reviews.csv", index=False)
    result = ingest(IngestSettings(source=str(tmp_path / "reviews.csv"), seed=3), tmp_path / "out", layout=SMALL)
    train_files = sorted((tmp_path / "out").glob("train-*.parquet"))
    assert [f.name for f in train_files][:2] == ["train-00000.parquet", "train-00001.parquet"]
    for path in train_files[:-1]:
        parquet = pq.ParquetFile(path)
        assert parquet.metadata.num_rows == 120, "a shard closes at the first row group past shard_rows=100"
        assert [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)] == [40, 40, 40]
    streamed = [row for batch in iter_split(tmp_path / "out", "train", batch_rows=16) for row in batch.to_pylist()]
    assert len(streamed) == result.metadata["rows"]["train"]
    assert streamed == pd.concat([pd.read_parquet(f, columns=["text", "label"]) for f in train_files]).to_dict(
        "records"
    )


def test_long_texts_cut_row_groups_by_characters(tmp_path):
    frame = pd.DataFrame(
        {"text": [f"{i} " + "word " * (200 if i % 10 == 0 else 5) for i in range(100)], "label": ["a", "b"] * 50}
    )
    frame.to_parquet(tmp_path / "d.parquet")
    ingest(
        IngestSettings(source=str(tmp_path / "d.parquet")),
        tmp_path / "out",
        layout=Layout(row_group_rows=1000, row_group_chars=2000),
    )
    parquet = pq.ParquetFile(tmp_path / "out" / "train-00000.parquet")
    sizes = [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)]
    assert len(sizes) > 3 and sum(sizes) == parquet.metadata.num_rows


def test_iter_split_reads_a_single_parquet_file_with_a_split_column(tmp_path):
    frame = pd.DataFrame({"text": list("abcdef"), "label": [0, 1] * 3, "split": ["train", "test", "validation"] * 2})
    frame.to_parquet(tmp_path / "one.parquet")
    rows = [r for batch in iter_split(tmp_path / "one.parquet", "test") for r in batch.to_pylist()]
    assert rows == [{"text": "b", "label": 1}, {"text": "e", "label": 0}]


# ---------------------------------------------------------------- files that cannot be read


def latin1_csv(path, bad_line: int):
    """A CSV whose ``bad_line``-th line (1 = header) holds 'café' in Latin-1 (0xE9 is not UTF-8)."""
    lines = ["text,label"] + [f"review number {i},{'pos' if i % 2 else 'neg'}" for i in range(1, 40)]
    lines[bad_line - 1] = "un café très bon,pos"
    data = ("\n".join(lines) + "\n").encode("latin-1")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(data)
    return data.index("caf\xe9".encode("latin-1")) + 3


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.csv.gz"])
def test_bytes_not_in_the_encoding_are_a_named_error_with_file_offset_and_line(tmp_path, name):
    offset = latin1_csv(tmp_path / name, bad_line=31)
    with pytest.raises(SourceEncodingError) as raised:
        ingest(IngestSettings(source=str(tmp_path / name)), tmp_path / "out", layout=Layout(chunk_rows=5))
    message = str(raised.value)
    assert str(tmp_path / name) in message
    assert f"byte {offset}" in message and "(line 31)" in message and "e9" in message
    assert "encoding" in message and "latin-1" in message
    assert ("decompressed" in message) == name.endswith(".gz")
    assert not list((tmp_path / "out").glob("*.parquet")), "a failed ingest leaves no half dataset"

    result = ingest(IngestSettings(source=str(tmp_path / name), encoding="latin-1"), tmp_path / "out")
    assert "un café très bon" in set(pd.read_parquet(tmp_path / "out")["text"])
    assert result.metadata["num_rows"] == 39


def test_jsonl_in_another_encoding_is_a_named_error(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "na\xefve", "label": "b"}\n')
    with pytest.raises(SourceEncodingError, match=r"reviews.jsonl: byte 43 \(line 2\) is not valid utf-8"):
        ingest(IngestSettings(source=str(path)), tmp_path / "out")


def test_an_unknown_encoding_is_named():
    with pytest.raises(ValueError, match="unknown encoding 'utf-9'"):
        IngestSettings(encoding="utf-9")


@pytest.mark.parametrize("empty", ["part-1.csv", "part-1.csv.gz", "part-1.parquet", "part-1.jsonl"])
def test_an_empty_file_among_shards_is_a_named_error(tmp_path, empty):
    pd.DataFrame(generate(40, seed=1)).to_csv(tmp_path / "part-0.csv", index=False)
    if empty.endswith(".gz"):
        with gzip.open(tmp_path / empty, "wb"):
            pass
    else:
        (tmp_path / empty).write_bytes(b"")
    with pytest.raises(EmptySourceError, match=re.escape(str(tmp_path / empty)) + " is empty"):
        ingest(IngestSettings(source=str(tmp_path / "part-*")), tmp_path / "out")


def test_a_file_with_a_header_and_no_rows_is_an_empty_source(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\n")
    with pytest.raises(EmptySourceError, match="has no rows"):
        ingest(IngestSettings(source=str(tmp_path / "d.csv")), tmp_path / "out")
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(EmptySourceError, match="blank.csv has no header and no rows"):
        ingest(IngestSettings(source=str(tmp_path / "blank.csv")), tmp_path / "out")


def test_globs_and_folders_that_name_nothing_are_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no file matches"):
        ingest(IngestSettings(source=str(tmp_path / "part-*.csv")), tmp_path / "out")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "_SUCCESS").write_text("")
    with pytest.raises(EmptySourceError, match="no data file"):
        ingest(IngestSettings(source=str(tmp_path / "export")), tmp_path / "out")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="unsupported file type .txt"):
        ingest(IngestSettings(source=str(tmp_path / "*.txt")), tmp_path / "out")


def test_a_malformed_csv_line_names_the_file(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\na,b\n" + 'c,d,e,"f\n' * 3)
    with pytest.raises(SourceError, match="d.csv is not valid CSV"):
        ingest(IngestSettings(source=str(tmp_path / "d.csv")), tmp_path / "out")


def test_shards_that_disagree_on_the_split_column_are_named(tmp_path):
    rows = pd.DataFrame(generate(40, seed=1))
    rows.assign(split="train").to_csv(tmp_path / "a.csv", index=False)
    rows.to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match="split_column 'split' is in .*a.csv but not in .*b.csv"):
        ingest(IngestSettings(source=str(tmp_path / "*.csv")), tmp_path / "out")


def test_the_source_version_of_a_local_glob_follows_its_shards(tmp_path):
    from textclf.source_version import source_version

    for i in range(2):
        pd.DataFrame(generate(10, seed=i)).to_csv(tmp_path / f"part-{i}.csv", index=False)
    glob = str(tmp_path / "part-*.csv")
    before = source_version(glob)
    (tmp_path / "other.csv").write_text("text,label\nx,y\n")
    assert source_version(glob) == before, "a file the glob does not match does not count"
    (tmp_path / "part-1.csv").write_text("text,label\nchanged,positive\n")
    assert source_version(glob) != before
