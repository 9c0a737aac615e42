"""Ingest from s3:// through the real ingest, against moto's S3 server on loopback (objects written with
boto3): the same code path as gs://, no S3-specific code anywhere but the store's fsspec package."""

import pandas as pd
import pytest

from textclf.ingest import IngestSettings, SourceError, ingest
from textclf.sample_data import generate
from textclf.source_version import source_version


@pytest.fixture(scope="module")
def reviews():
    return pd.DataFrame(generate(120, seed=11))


def test_an_s3_csv_source_ingests_like_the_local_file(s3_client, s3_bucket, tmp_path, reviews):
    local = tmp_path / "reviews.csv"
    reviews.to_csv(local, index=False)
    s3_client.upload_file(str(local), s3_bucket, "data/reviews.csv")
    source = f"s3://{s3_bucket}/data/reviews.csv"

    from_s3 = ingest(IngestSettings(source=source), str(tmp_path / "s3"), card_path=str(tmp_path / "card.md"))
    from_disk = ingest(IngestSettings(source=str(local)), str(tmp_path / "disk"))

    assert from_s3.metadata["fingerprint"] == from_disk.metadata["fingerprint"]
    assert from_s3.metadata["num_rows"] == len(reviews) and from_s3.metadata["source"] == source
    assert source in (tmp_path / "card.md").read_text()


def test_an_s3_prefix_of_mixed_shards_with_markers_ingests_like_the_local_folder(
    s3_client, s3_bucket, tmp_path, reviews
):
    """A Spark-style export: gzipped CSV and Parquet parts, ``_SUCCESS`` and a ``_temporary/`` leftover."""
    local = tmp_path / "export"
    local.mkdir()
    reviews.iloc[:70].to_csv(local / "part-00000.csv.gz", index=False, compression="gzip")
    reviews.iloc[70:].to_parquet(local / "part-00001.parquet", index=False)
    for path in local.iterdir():
        s3_client.upload_file(str(path), s3_bucket, f"export/{path.name}")
    s3_client.put_object(Bucket=s3_bucket, Key="export/_SUCCESS", Body=b"")
    s3_client.put_object(Bucket=s3_bucket, Key="export/_temporary/0/part-00002.csv", Body=b"text,label\nhalf,")

    from_disk = ingest(IngestSettings(source=str(local)), str(tmp_path / "disk"))
    for source in (f"s3://{s3_bucket}/export", f"s3://{s3_bucket}/export/part-*"):
        from_s3 = ingest(IngestSettings(source=source), str(tmp_path / "s3"))
        assert from_s3.metadata["fingerprint"] == from_disk.metadata["fingerprint"], source
        assert from_s3.metadata["source_files"] == 2

    before = source_version(f"s3://{s3_bucket}/export/part-*")
    assert source_version(f"s3://{s3_bucket}/export/part-*") == before
    s3_client.put_object(Bucket=s3_bucket, Key="export/part-00001.parquet", Body=b"changed")
    assert source_version(f"s3://{s3_bucket}/export/part-*") != before


def test_a_missing_s3_source_is_a_named_source_error(s3_bucket, tmp_path):
    with pytest.raises(SourceError, match=f"s3://{s3_bucket}/data/absent.csv"):
        ingest(IngestSettings(source=f"s3://{s3_bucket}/data/absent.csv"), str(tmp_path / "dataset"))
