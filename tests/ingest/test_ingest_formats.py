"""A file format is one entry of ``textclf.data.formats.FORMATS``: registered there and nowhere else, a
new format is read from a file, a folder (with split names) and a glob, gzipped or not, and the errors
that list the formats name it."""

import gzip

import pandas as pd
import pytest

from textclf.data import formats
from textclf.data.sources import read_frame
from textclf.ingest import EmptySourceError, IngestSettings, SourceError, ingest


class PipeSeparated(formats.Csv):
    """A format added the way CONTRIBUTING.md says: a subclass and its registry entry."""

    suffix, what = ".psv", "valid pipe-separated values"
    separator = "|"


@pytest.fixture
def with_psv(monkeypatch):
    monkeypatch.setitem(formats.FORMATS, PipeSeparated.suffix, PipeSeparated())


def write_psv(path, rows, compressed=False):
    text = "review|sentiment\n" + "".join(f"{text}|{label}\n" for text, label in rows)
    if compressed:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")


ROWS = [(f"text number {i} {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg") for i in range(40)]


def test_a_registered_format_is_read_from_a_folder_with_split_names(tmp_path, with_psv):
    folder = tmp_path / "data"
    folder.mkdir()
    write_psv(folder / "train.psv", ROWS[:30])
    write_psv(folder / "test.psv.gz", ROWS[30:], compressed=True)
    settings = IngestSettings(source=str(folder), text_column="review", label_column="sentiment", seed=1)
    result = ingest(settings, tmp_path / "out")
    out = pd.read_parquet(tmp_path / "out")
    assert sorted(out["text"]) == sorted(text for text, _ in ROWS)
    assert set(out.loc[out["split"] == "test", "text"]) == {text for text, _ in ROWS[30:]}
    assert result.metadata["split_origin"] == "file names"


def test_a_registered_format_is_matched_by_a_glob_and_read_in_chunks(tmp_path, with_psv):
    write_psv(tmp_path / "part-0.psv", ROWS[:20])
    write_psv(tmp_path / "part-1.psv", ROWS[20:])
    frame = read_frame(str(tmp_path / "part-*.psv"))
    assert list(frame.columns) == ["review", "sentiment"]
    assert frame["review"].tolist() == [text for text, _ in ROWS]


def test_its_reader_errors_and_the_format_lists_name_it(tmp_path, with_psv):
    (tmp_path / "bad.psv").write_text("review|sentiment\na|b\nc|d|e|f\n", encoding="utf-8")
    with pytest.raises(SourceError, match="bad.psv is not valid pipe-separated values"):
        read_frame(str(tmp_path / "bad.psv"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match=r"use \.csv, \.tsv, \.parquet, \.jsonl or \.psv, optionally \.gz"):
        read_frame(str(tmp_path / "notes.txt"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptySourceError, match=r"no data file \(.*\.psv, optionally \.gz\)"):
        read_frame(str(empty))


def test_without_the_entry_the_suffix_is_refused(tmp_path):
    write_psv(tmp_path / "train.psv", ROWS)
    with pytest.raises(SourceError, match="unsupported file type .psv"):
        read_frame(str(tmp_path / "train.psv"))
