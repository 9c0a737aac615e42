"""Every source kind: local files in each format (plain and .gz), hf:// offline, gs:// on an emulator."""

import gzip
import shutil
import time

import pandas as pd
import pytest

from tests.cloud.conftest import gcs_bucket, gcs_emulator_url  # noqa: F401 - the real emulator's fixtures
from textclf.data.formats import FORMATS
from textclf.data.shards import Layout
from textclf.ingest import IngestSettings, SourceError, ingest

RAW = pd.DataFrame(
    {
        "review": [f"text number {i} {'good' if i % 2 else 'bad'}" for i in range(60)],
        "sentiment": ["pos" if i % 2 else "neg" for i in range(60)],
    }
)


def write(frame: pd.DataFrame, path, kind: str):
    if kind == ".csv":
        frame.to_csv(path, index=False)
    elif kind == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif kind == ".parquet":
        frame.to_parquet(path, index=False)
    elif kind == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:  # a format added to textclf.data.formats.FORMATS: write its files here, and every test below reads them
        raise AssertionError(f"no writer for {kind} in this test")


def gzipped(path):
    target = path.with_name(path.name + ".gz")
    with open(path, "rb") as plain, gzip.open(target, "wb") as packed:
        shutil.copyfileobj(plain, packed)
    return target


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("kind", list(FORMATS))
def test_each_file_format_gives_the_same_dataset(tmp_path, kind, compressed):
    path = tmp_path / f"data{kind}"
    write(RAW, path, kind)
    if compressed:
        path = gzipped(path)
    settings = IngestSettings(source=str(path), text_column="review", label_column="sentiment")
    result = ingest(settings, tmp_path / "out")
    out = pd.read_parquet(tmp_path / "out")
    assert list(out.columns) == ["text", "label", "split"]
    assert sorted(out["text"]) == sorted(RAW["review"])
    assert result.metadata["labels"] == ["neg", "pos"]
    # Same rows whatever the container format: the fingerprint says so.
    reference = ingest(
        IngestSettings(source=f"file://{write_csv(tmp_path)}", text_column="review", label_column="sentiment"),
        tmp_path / "ref",
    )
    assert result.metadata["fingerprint"] == reference.metadata["fingerprint"]
    assert result.metadata["rows"] == reference.metadata["rows"] and sum(result.metadata["rows"].values()) == 60


def write_csv(tmp_path):
    path = tmp_path / "reference.csv"
    RAW.to_csv(path, index=False)
    return path


def test_numeric_looking_texts_stay_texts(tmp_path):
    frame = pd.DataFrame({"text": [f"{i:04d}" for i in range(40)], "label": ["a", "b"] * 20})
    write(frame, tmp_path / "d.csv", ".csv")
    result = ingest(IngestSettings(source=str(tmp_path / "d.csv")), tmp_path / "out")
    assert result.bad_rows == []
    assert sorted(pd.read_parquet(tmp_path / "out")["text"]) == list(frame["text"])


def test_hf_source_fails_fast_and_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(SourceError, match="hf://someone/no-such-dataset.*offline"):
        ingest(IngestSettings(source="hf://someone/no-such-dataset"), tmp_path / "out")
    assert time.monotonic() - started < 30


def test_hf_source_without_offline_flag_fails_fast_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    """The hub endpoint points at a closed loopback port, standing in for a machine without network."""
    import socket

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot reach the Hugging Face hub.*HF_HUB_OFFLINE=1"):
        ingest(IngestSettings(source="hf://someone/data:config"), tmp_path / "out")
    assert time.monotonic() - started < 10


def test_gs_source_is_streamed_through_the_storage_module(tmp_path, gcs_bucket):  # noqa: F811
    """A real gcp-storage-emulator on loopback (the cloud tests' fixture)."""
    bucket = gcs_bucket
    path = tmp_path / "data.jsonl"
    write(RAW, path, ".jsonl")
    bucket.blob("datasets/data.jsonl.gz").upload_from_filename(str(gzipped(path)))
    result = ingest(
        IngestSettings(
            source=f"gs://{bucket.name}/datasets/data.jsonl.gz", text_column="review", label_column="sentiment"
        ),
        tmp_path / "out",
    )
    assert result.metadata["num_rows"] == len(RAW)
    with pytest.raises(SourceError, match="not found"):
        ingest(IngestSettings(source=f"gs://{bucket.name}/datasets/missing.csv"), tmp_path / "out")


def test_hf_source_reads_every_split_in_chunks_with_its_class_names(tmp_path, monkeypatch):
    """A hub-layout dataset on local disk (load_dataset reads a folder offline as it reads a hub repo):
    ClassLabel names become the label names, split names the split column, unknown splits bad rows."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    for split, n in (("train", 60), ("test", 20), ("unsupervised", 5)):
        rows = {"text": [f"{split} review {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(repo / f"{split}-00000-of-00001.parquet"))
    result = ingest(IngestSettings(source=f"hf://{tmp_path / 'repo'}"), tmp_path / "out", layout=Layout(chunk_rows=8))
    assert result.metadata["labels"] == ["neg", "pos"]
    assert result.metadata["rows"]["test"] == 20 and result.metadata["rows"]["validation"] > 0, (
        "validation carved from train"
    )
    assert result.metadata["bad_rows_by_reason"] == {"unknown split": 5}
    assert result.metadata["source_files"] == 3
