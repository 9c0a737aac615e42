"""GCS round trip against the real gcp-storage-emulator: ingest reads gs:// sources, and the
step outputs are written back under a gs:// pipeline root and read again unchanged."""

import pandas as pd
import pytest

from textclf import storage
from textclf.ingest import IngestSettings, SourceError, ingest
from textclf.sample_data import generate


@pytest.fixture(scope="module")
def reviews():
    return pd.DataFrame(generate(120, seed=7))


@pytest.mark.parametrize("name, write", [
    ("reviews.csv", lambda frame, path: frame.to_csv(path, index=False)),
    ("reviews.parquet", lambda frame, path: frame.to_parquet(path, index=False)),
    ("reviews.jsonl", lambda frame, path: frame.to_json(path, orient="records", lines=True)),
])
def test_ingest_from_gcs_matches_the_local_file(gcs_bucket, tmp_path, reviews, name, write):
    local = tmp_path / name
    write(reviews, local)
    gcs_bucket.blob(f"data/{name}").upload_from_filename(str(local))

    from_gcs = ingest(IngestSettings(source=f"gs://{gcs_bucket.name}/data/{name}"), str(tmp_path / "gcs" / "dataset.parquet"))
    from_disk = ingest(IngestSettings(source=str(local)), str(tmp_path / "disk" / "dataset.parquet"))

    assert from_gcs.metadata["fingerprint"] == from_disk.metadata["fingerprint"]
    assert from_gcs.metadata["num_rows"] == len(reviews)
    assert from_gcs.metadata["source"] == f"gs://{gcs_bucket.name}/data/{name}"


def test_missing_gcs_source_is_a_named_source_error(gcs_bucket, tmp_path):
    with pytest.raises(SourceError, match=f"gs://{gcs_bucket.name}/data/absent.csv"):
        ingest(IngestSettings(source=f"gs://{gcs_bucket.name}/data/absent.csv"), str(tmp_path / "dataset.parquet"))


def test_step_outputs_round_trip_through_the_pipeline_root(gcs_bucket, tmp_path, reviews):
    source = tmp_path / "reviews.csv"
    reviews.to_csv(source, index=False)
    outputs = tmp_path / "ingest-outputs"
    result = ingest(IngestSettings(source=str(source)), str(outputs / "dataset.parquet"), card_path=str(outputs / "card.md"))

    root = f"gs://{gcs_bucket.name}/pipeline-root/run-1/ingest"
    storage.upload_dir(str(outputs), root)
    storage.write_text(f"{root}/metadata.json", pd.Series(result.metadata).to_json())

    back = storage.localize(root, str(tmp_path / "back"))
    pd.testing.assert_frame_equal(pd.read_parquet(f"{back}/dataset.parquet"), pd.read_parquet(outputs / "dataset.parquet"))
    assert open(f"{back}/card.md").read() == (outputs / "card.md").read_text()
    assert result.metadata["fingerprint"] in storage.read_text(f"{root}/metadata.json")
