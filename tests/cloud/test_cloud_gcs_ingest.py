"""GCS round trip against the real gcp-storage-emulator: ingest reads gs:// sources (one object, a
glob of shards, a prefix), and the step outputs are written back under a gs:// pipeline root and
read again unchanged."""

from pathlib import Path

import pandas as pd
import pytest

from textclf.ingest import IngestSettings, SourceError, ingest
from textclf.platform import storage
from textclf.sample_data import generate


@pytest.fixture(scope="module")
def reviews():
    return pd.DataFrame(generate(120, seed=7))


@pytest.mark.parametrize(
    "name, write",
    [
        ("reviews.csv", lambda frame, path: frame.to_csv(path, index=False)),
        ("reviews.parquet", lambda frame, path: frame.to_parquet(path, index=False)),
        ("reviews.jsonl", lambda frame, path: frame.to_json(path, orient="records", lines=True)),
    ],
)
def test_ingest_from_gcs_matches_the_local_file(gcs_bucket, tmp_path, reviews, name, write):
    local = tmp_path / name
    write(reviews, local)
    gcs_bucket.blob(f"data/{name}").upload_from_filename(str(local))

    from_gcs = ingest(IngestSettings(source=f"gs://{gcs_bucket.name}/data/{name}"), str(tmp_path / "gcs" / "dataset"))
    from_disk = ingest(IngestSettings(source=str(local)), str(tmp_path / "disk" / "dataset"))

    assert from_gcs.metadata["fingerprint"] == from_disk.metadata["fingerprint"]
    assert from_gcs.metadata["num_rows"] == len(reviews)
    assert from_gcs.metadata["source"] == f"gs://{gcs_bucket.name}/data/{name}"


def test_missing_gcs_source_is_a_named_source_error(gcs_bucket, tmp_path):
    with pytest.raises(SourceError, match=f"gs://{gcs_bucket.name}/data/absent.csv"):
        ingest(IngestSettings(source=f"gs://{gcs_bucket.name}/data/absent.csv"), str(tmp_path / "dataset"))


def test_step_outputs_round_trip_through_the_pipeline_root(gcs_bucket, tmp_path, reviews):
    source = tmp_path / "reviews.csv"
    reviews.to_csv(source, index=False)
    outputs = tmp_path / "ingest-outputs"
    result = ingest(IngestSettings(source=str(source)), str(outputs / "dataset"), card_path=str(outputs / "card.md"))

    root = f"gs://{gcs_bucket.name}/pipeline-root/run-1/ingest"
    storage.upload(str(outputs), root)
    storage.write_text(f"{root}/metadata.json", pd.Series(result.metadata).to_json())

    back = storage.localize(root, str(tmp_path / "back"))
    for shard in (outputs / "dataset").iterdir():
        assert Path(f"{back}/dataset/{shard.name}").read_bytes() == shard.read_bytes()
    assert Path(f"{back}/card.md").read_text() == (outputs / "card.md").read_text()
    assert result.metadata["fingerprint"] in storage.read_text(f"{root}/metadata.json")


def test_a_glob_or_prefix_of_shards_on_gcs_matches_the_local_folder(gcs_bucket, tmp_path, reviews):
    """An export as users have it: part files of mixed formats under a prefix, with Spark's _SUCCESS."""
    from textclf.platform.storage import content_version

    local = tmp_path / "export"
    local.mkdir()
    reviews.iloc[:50].to_csv(local / "part-00000.csv.gz", index=False, compression="gzip")
    reviews.iloc[50:].to_parquet(local / "part-00001.parquet", index=False)
    for path in local.iterdir():
        gcs_bucket.blob(f"export/{path.name}").upload_from_filename(str(path))
    gcs_bucket.blob("export/_SUCCESS").upload_from_string(b"")
    gcs_bucket.blob("elsewhere/part-00002.csv").upload_from_string(b"text,label\nnot this,positive\n")

    from_disk = ingest(IngestSettings(source=str(local)), str(tmp_path / "disk"))
    for source in (
        f"gs://{gcs_bucket.name}/export/part-*",
        f"gs://{gcs_bucket.name}/export/",
        f"gs://{gcs_bucket.name}/export",
    ):
        from_gcs = ingest(IngestSettings(source=source), str(tmp_path / "gcs"))
        assert from_gcs.metadata["fingerprint"] == from_disk.metadata["fingerprint"], source
        assert from_gcs.metadata["source_files"] == 2
    # the source-version step sees the same two shards, and a changed shard changes the version
    before = content_version(f"gs://{gcs_bucket.name}/export/part-*")
    gcs_bucket.blob("export/part-00001.parquet").upload_from_string(b"changed")
    assert content_version(f"gs://{gcs_bucket.name}/export/part-*") != before
    with pytest.raises(SourceError, match="no file matches"):
        ingest(IngestSettings(source=f"gs://{gcs_bucket.name}/export/*.jsonl"), str(tmp_path / "none"))


def test_an_empty_shard_on_gcs_is_named_by_its_uri(gcs_bucket, tmp_path, reviews):
    from textclf.ingest import EmptySourceError

    reviews.to_csv(tmp_path / "part-0.csv", index=False)
    gcs_bucket.blob("export/part-0.csv").upload_from_filename(str(tmp_path / "part-0.csv"))
    gcs_bucket.blob("export/part-1.csv").upload_from_string(b"")
    with pytest.raises(EmptySourceError, match=f"gs://{gcs_bucket.name}/export/part-1.csv is empty"):
        ingest(IngestSettings(source=f"gs://{gcs_bucket.name}/export/*.csv"), str(tmp_path / "out"))
