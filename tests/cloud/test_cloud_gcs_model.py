"""A gs:// base model or champion model is downloaded once, by resolve_base_model (gcp-storage-emulator)."""

from pathlib import Path

from transformers import AutoConfig

from textclf.base_model import resolve_base_model
from textclf.platform import storage


def test_a_gs_model_directory_is_downloaded_and_loads(gcs_bucket, tiny_model_dir):
    uri = f"gs://{gcs_bucket.name}/models/tiny"
    storage.upload(tiny_model_dir, uri)
    local = resolve_base_model(uri)
    assert not local.startswith("gs://") and (Path(local) / "config.json").exists()
    assert AutoConfig.from_pretrained(local).id2label == {0: "negative", 1: "positive"}


def test_reading_only_config_and_tokenizer_leaves_the_weights_in_the_bucket(gcs_bucket, tiny_model_dir):
    """The tokenize step and the tuning baseline read a gs:// base model's config and tokenizer, not its weights."""
    from transformers import AutoTokenizer

    from textclf.tokenize import load_tokenizer

    uri = f"gs://{gcs_bucket.name}/models/tiny-light"
    storage.upload(tiny_model_dir, uri)
    local = Path(resolve_base_model(uri, weights=False))
    assert sorted(p.name for p in local.rglob("*")) == ["config.json", "tokenizer.json", "tokenizer_config.json"]
    assert AutoConfig.from_pretrained(local).id2label == {0: "negative", 1: "positive"}
    assert (
        load_tokenizer(uri)("a review").input_ids == AutoTokenizer.from_pretrained(tiny_model_dir)("a review").input_ids
    )


def test_local_and_hub_names_pass_through(tmp_path):
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)
    assert resolve_base_model("distilbert-base-uncased") == "distilbert-base-uncased"
