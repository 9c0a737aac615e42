"""components.storage against a real gcp-storage-emulator on loopback."""

import pytest

from textclf import storage


def test_is_gcs_and_split():
    assert storage.is_gcs("gs://b/x") and not storage.is_gcs("/tmp/gs://x")
    assert storage.split_gcs("gs://bucket/a/b.csv") == ("bucket", "a/b.csv")
    assert storage.split_gcs("gs://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="without a bucket"):
        storage.split_gcs("gs:///x")
    with pytest.raises(ValueError, match="not a gs:// URI"):
        storage.split_gcs("s3://b/x")


def test_local_paths_pass_through(tmp_path):
    assert storage.localize(str(tmp_path / "data.csv"), str(tmp_path / "dl")) == str(tmp_path / "data.csv")
    storage.write_text(str(tmp_path / "a" / "b.txt"), "héllo")
    assert storage.read_text(str(tmp_path / "a" / "b.txt")) == "héllo"


def test_text_round_trip(gcs_bucket):
    uri = f"gs://{gcs_bucket.name}/reports/metrics.json"
    storage.write_text(uri, '{"f1": 0.9, "note": "héllo"}')
    assert storage.read_text(uri) == '{"f1": 0.9, "note": "héllo"}'
    with pytest.raises(FileNotFoundError, match=f"gs://{gcs_bucket.name}/reports/missing.json"):
        storage.read_text(f"gs://{gcs_bucket.name}/reports/missing.json")


def test_localize_single_object(gcs_bucket, tmp_path):
    gcs_bucket.blob("data/train.csv").upload_from_string("text,label\nok,1\n")
    path = storage.localize(f"gs://{gcs_bucket.name}/data/train.csv", str(tmp_path / "dl"))
    assert path == str(tmp_path / "dl" / "train.csv")
    assert open(path).read() == "text,label\nok,1\n"


def test_upload_dir_then_localize_prefix_keeps_layout(gcs_bucket, tmp_path):
    model = tmp_path / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "config.json").write_text('{"id2label": {"0": "neg"}}')
    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    uri = f"gs://{gcs_bucket.name}/root/run-1/model"

    storage.upload_dir(str(model), uri)
    names = sorted(b.name for b in gcs_bucket.list_blobs())
    assert names == ["root/run-1/model/config.json", "root/run-1/model/model.safetensors", "root/run-1/model/tokenizer/vocab.txt"]

    for suffix in ("", "/"):  # with and without the trailing slash
        local = storage.localize(uri + suffix, str(tmp_path / f"dl{suffix and 'slash'}"))
        assert local.endswith("/model")
        for rel in ("config.json", "model.safetensors", "tokenizer/vocab.txt"):
            assert open(f"{local}/{rel}", "rb").read() == (model / rel).read_bytes()


def test_localize_prefix_does_not_match_sibling_names(gcs_bucket, tmp_path):
    gcs_bucket.blob("m/model/config.json").upload_from_string("{}")
    gcs_bucket.blob("m/model-old/config.json").upload_from_string("old")
    local = storage.localize(f"gs://{gcs_bucket.name}/m/model", str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json"]
    assert open(f"{local}/config.json").read() == "{}"


def test_localize_missing_names_the_uri(gcs_bucket, tmp_path):
    uri = f"gs://{gcs_bucket.name}/nothing/here.csv"
    with pytest.raises(FileNotFoundError, match=uri):
        storage.localize(uri, str(tmp_path))


def test_localize_refuses_objects_escaping_the_target(gcs_bucket, tmp_path, monkeypatch):
    """Real GCS accepts an object named "m/model/../../../escape.txt"; the emulator refuses to
    store one, so the listing is the only part faked here."""

    class EscapingBlob:
        name = "m/model/../../../escape.txt"

        def download_to_filename(self, path):
            raise AssertionError(f"must not download to {path}")

    monkeypatch.setattr(storage, "_objects_under", lambda client, bucket, prefix: [EscapingBlob()])
    with pytest.raises(ValueError, match="outside"):
        storage.localize(f"gs://{gcs_bucket.name}/m/model", str(tmp_path / "dl"))
    assert not (tmp_path / "escape.txt").exists()


def test_upload_dir_bad_input(gcs_bucket, tmp_path):
    with pytest.raises(NotADirectoryError, match="missing"):
        storage.upload_dir(str(tmp_path / "missing"), f"gs://{gcs_bucket.name}/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no file"):
        storage.upload_dir(str(tmp_path / "empty"), f"gs://{gcs_bucket.name}/x")


def test_content_version_changes_only_with_content(gcs_bucket, tmp_path):
    uri = f"gs://{gcs_bucket.name}/src/data.csv"
    gcs_bucket.blob("src/data.csv").upload_from_string("text,label\na,0\n")
    first = storage.content_version(uri)
    assert storage.content_version(uri) == first
    assert storage.content_version(f"gs://{gcs_bucket.name}/src") != ""
    gcs_bucket.blob("src/data.csv").upload_from_string("text,label\nb,1\n")
    assert storage.content_version(uri) != first
    with pytest.raises(FileNotFoundError, match="nothing"):
        storage.content_version(f"gs://{gcs_bucket.name}/nothing")

    local = tmp_path / "d.csv"
    local.write_text("a")
    version = storage.content_version(str(local))
    local.write_text("b")
    assert storage.content_version(str(local)) != version
