"""textclf.platform.storage on local disk, and on Cloud Storage and S3 through real emulators on loopback
(gcp-storage-emulator, moto's S3 server): the same calls, checked with each store's own client."""

import logging
from pathlib import Path

import pytest

from textclf.platform import storage


def test_locations_are_told_apart_without_the_callers_knowing_schemes():
    assert [
        storage.protocol(u) for u in ("gs://b/x", "S3://b/x", "/tmp/gs://x", "data/x.csv", "C://x", "file:///x")
    ] == ["gs", "s3", "file", "file", "file", "file"]
    assert storage.is_remote("gs://b/x") and storage.is_remote("s3://b/x") and storage.is_remote("abfs://c/x")
    assert not storage.is_remote("/tmp/gs://x") and not storage.is_remote("file:///tmp/x")
    assert storage.is_gcs("gcs://b") and not storage.is_gcs("s3://b")
    assert storage.is_shared("s3://b/x") and not storage.is_shared("minio://b/x") and not storage.is_shared("/x")
    assert storage.join("gs://b/m/", "/probe.jsonl") == "gs://b/m/probe.jsonl" and storage.join("", "a") == "a"
    assert storage.name_of("s3://b/models/run-1/") == "run-1"
    assert storage.glob_root("gs://b/export/*/part-*.csv") == "gs://b/export" and storage.glob_root("*.csv") == ""


def test_an_unknown_scheme_is_a_named_error():
    with pytest.raises(storage.UnsupportedURIError, match="pvc://volume/x.csv"):
        storage.read_text("pvc://volume/x.csv")


def test_local_paths_pass_through_and_writes_are_atomic(tmp_path):
    assert storage.localize(str(tmp_path / "data.csv"), str(tmp_path / "dl")) == str(tmp_path / "data.csv")
    target = tmp_path / "a" / "b.txt"
    storage.write_text(str(target), "héllo")
    assert storage.read_text(str(target)) == "héllo"
    with pytest.raises(RuntimeError), storage.atomic_write(str(target), "w", encoding="utf-8") as handle:
        handle.write("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8") == "héllo" and sorted(p.name for p in target.parent.iterdir()) == [
        "b.txt"
    ]
    with pytest.raises(ValueError, match="reads only"), storage.open(str(target), "wb"):
        pass


def test_local_listings_keep_the_names_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a.csv", "data/b.csv", "data/deep/c.csv", "data/deep/er/d.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("text,label\n")
    assert storage.list_files("*.csv") == ["a.csv"]
    assert storage.list_files("data/*/*.csv") == ["data/deep/c.csv"]
    assert storage.list_files("./data/**/*.csv") == ["./data/b.csv", "./data/deep/c.csv", "./data/deep/er/d.csv"]
    assert [e.relative for e in storage.entries("data/")] == ["b.csv", "deep/c.csv", "deep/er/d.csv"]
    assert storage.list_files(f"file://{tmp_path}/a.csv") == [f"file://{tmp_path}/a.csv"]


def test_text_round_trip(bucket):
    uri = f"{bucket.uri}/reports/metrics.json"
    storage.write_text(uri, '{"f1": 0.9, "note": "héllo"}')
    assert storage.read_text(uri) == '{"f1": 0.9, "note": "héllo"}'
    assert bucket.names() == ["reports/metrics.json"]
    with pytest.raises(FileNotFoundError, match=f"{bucket.uri}/reports/missing.json"):
        storage.read_text(f"{bucket.uri}/reports/missing.json")
    with pytest.raises(ValueError, match="bucket or folder"):
        storage.write_text(bucket.uri, "x")


def test_a_failed_write_leaves_no_object(bucket):
    with pytest.raises(RuntimeError), storage.atomic_write(f"{bucket.uri}/model/last.pt") as handle:
        handle.write(b"\0" * 1000)
        raise RuntimeError("preempted")
    assert bucket.names() == []


def test_listing_a_file_a_folder_and_globs(bucket):
    for key in (
        "export/part-0.csv",
        "export/part-1.csv",
        "export/_SUCCESS",
        "export/sub/part-2.csv",
        "export-old/part-9.csv",
        "export/empty/",
    ):  # "empty/": a console's folder placeholder
        bucket.put(key, b"" if key.endswith("/") else b"text,label\na,0\n")
    root = bucket.uri
    assert storage.list_files(f"{root}/export/part-0.csv") == [f"{root}/export/part-0.csv"]
    folder = [
        f"{root}/export/_SUCCESS",
        f"{root}/export/part-0.csv",
        f"{root}/export/part-1.csv",
        f"{root}/export/sub/part-2.csv",
    ]
    assert storage.list_files(f"{root}/export") == storage.list_files(f"{root}/export/") == folder
    assert [e.relative for e in storage.entries(f"{root}/export")] == [
        "_SUCCESS",
        "part-0.csv",
        "part-1.csv",
        "sub/part-2.csv",
    ]
    assert storage.list_files(f"{root}/export/part-?.csv") == folder[1:3]
    assert storage.list_files(f"{root}/export/**/part-*.csv") == folder[1:]
    assert storage.list_files(f"{root}/*/part-9.csv") == [f"{root}/export-old/part-9.csv"]
    assert storage.size(f"{root}/export/*.csv") == 2 * len(b"text,label\na,0\n")
    assert storage.exists(f"{root}/export") and storage.is_dir(f"{root}/export")
    assert not storage.is_dir(f"{root}/export/part-0.csv") and not storage.exists(f"{root}/nothing")
    with pytest.raises(FileNotFoundError, match="no file matches"):
        storage.list_files(f"{root}/export/*.parquet")
    with pytest.raises(FileNotFoundError, match=f"{root}/nothing"):
        storage.list_files(f"{root}/nothing")


def test_localize_single_object(bucket, tmp_path):
    bucket.put("data/train.csv", b"text,label\nok,1\n")
    path = storage.localize(f"{bucket.uri}/data/train.csv", str(tmp_path / "dl"))
    assert path == str(tmp_path / "dl" / "train.csv")
    assert Path(path).read_text() == "text,label\nok,1\n"
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["train.csv"], "no partial file left beside it"


def test_upload_a_folder_then_localize_it_keeps_the_layout(bucket, tmp_path, caplog):
    model = tmp_path / "model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "config.json").write_text('{"id2label": {"0": "neg"}}')
    (model / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (model / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    uri = f"{bucket.uri}/root/run-1/model"

    with caplog.at_level(logging.INFO, logger=storage.__name__):
        storage.upload(str(model), uri)
    assert bucket.names() == [
        "root/run-1/model/config.json",
        "root/run-1/model/model.safetensors",
        "root/run-1/model/tokenizer/vocab.txt",
    ]
    assert any("uploaded" in r.message and "3 files" in r.message and "MB/s" in r.message for r in caplog.records)

    for suffix in ("", "/"):  # with and without the trailing slash
        local = storage.localize(uri + suffix, str(tmp_path / f"dl{suffix and 'slash'}"))
        assert local.endswith("/model")
        for rel in ("config.json", "model.safetensors", "tokenizer/vocab.txt"):
            assert Path(f"{local}/{rel}").read_bytes() == (model / rel).read_bytes()


def test_big_transfers_log_progress_with_rates(bucket, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(storage, "PROGRESS_EVERY_S", 0.0)  # every piece the store reports
    (tmp_path / "weights.bin").write_bytes(b"\1" * (3 << 20))
    with caplog.at_level(logging.INFO, logger=storage.__name__):
        storage.upload(str(tmp_path / "weights.bin"), f"{bucket.uri}/weights.bin")
        storage.download(f"{bucket.uri}/weights.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == (tmp_path / "weights.bin").read_bytes()
    progress = [r.message for r in caplog.records if "of 3.1 MB" in r.message]
    assert progress and all("MB/s" in line for line in progress)


def test_localize_prefix_does_not_match_sibling_names(bucket, tmp_path):
    bucket.put("m/model/config.json", b"{}")
    bucket.put("m/model-old/config.json", b"old")
    local = storage.localize(f"{bucket.uri}/m/model", str(tmp_path))
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json"]
    assert Path(f"{local}/config.json").read_text() == "{}"


def test_localize_missing_names_the_uri(bucket, tmp_path):
    uri = f"{bucket.uri}/nothing/here.csv"
    with pytest.raises(FileNotFoundError, match=uri):
        storage.localize(uri, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=uri):
        storage.download(uri, str(tmp_path / "here.csv"))
    assert not (tmp_path / "here.csv").exists()


def test_localize_refuses_objects_escaping_the_target(gcs_bucket, tmp_path, monkeypatch):
    """Real GCS and S3 accept an object named "m/model/../../../escape.txt"; the emulator refuses to
    store one, so the listing is the only part faked here."""
    uri = f"gs://{gcs_bucket.name}/m/model"
    escaping = storage.Entry(f"{uri}/../../../escape.txt", "../../../escape.txt", 1, {})
    monkeypatch.setattr(storage, "entries", lambda location: [escaping])
    monkeypatch.setattr(storage, "_get", lambda *args: pytest.fail(f"must not download {args}"))
    with pytest.raises(ValueError, match="outside"):
        storage.localize(uri, str(tmp_path / "dl"))
    assert not (tmp_path / "escape.txt").exists()


def test_upload_bad_input(bucket, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        storage.upload(str(tmp_path / "missing"), f"{bucket.uri}/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no file"):
        storage.upload(str(tmp_path / "empty"), f"{bucket.uri}/x")


def test_delete_a_folder_never_a_bucket(bucket):
    for key in ("ckpt/last.pt", "ckpt/best.pt", "ckpt-other/last.pt"):
        bucket.put(key, b"x")
    assert storage.delete(f"{bucket.uri}/ckpt") == 2
    assert bucket.names() == ["ckpt-other/last.pt"]
    assert storage.delete(f"{bucket.uri}/ckpt") == 0
    with pytest.raises(ValueError, match="whole bucket"):
        storage.delete(bucket.uri)


def test_content_version_changes_only_with_content(bucket, tmp_path):
    uri = f"{bucket.uri}/src/data.csv"
    bucket.put("src/data.csv", b"text,label\na,0\n")
    first = storage.content_version(uri)
    assert storage.content_version(uri) == first
    assert storage.content_version(f"{bucket.uri}/src") != ""
    bucket.put("src/data.csv", b"text,label\nb,1\n")
    assert storage.content_version(uri) != first
    with pytest.raises(FileNotFoundError, match="nothing"):
        storage.content_version(f"{bucket.uri}/nothing")

    local = tmp_path / "d.csv"
    local.write_text("a")
    version = storage.content_version(str(local))
    local.write_text("b")
    assert storage.content_version(str(local)) != version
