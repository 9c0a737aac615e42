"""Train/serve skew: the server encodes a text exactly as the tokenize step stored it for training."""

import json
import shutil

import datasets
import pytest

from textclf.inference import InferenceSettings, load_engine
from textclf.tokenize import TokenizeSettings, tokenize

LONG = "opening words " + " ".join(f"w{i}" for i in range(400)) + " final verdict terrible"


@pytest.fixture
def tokenized_and_trained(sample_parquet, tiny_model_dir, tmp_path):
    """The sample data tokenized head_tail at 40 tokens (plus a long text), and the tiny model with
    the training.json the train step writes for it."""
    import pandas as pd

    frame = pd.read_parquet(sample_parquet[0])
    frame = pd.concat([frame, pd.DataFrame({"text": [LONG], "label": [0], "split": ["test"]})], ignore_index=True)
    frame.to_parquet(tmp_path / "data.parquet")
    metadata = tokenize(
        str(tmp_path / "data.parquet"),
        str(tmp_path / "tok"),
        TokenizeSettings(base_model=tiny_model_dir, max_length=40, truncation="head_tail"),
    )
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "training.json").write_text(json.dumps({k: metadata[k] for k in ("max_length", "truncation")}))
    return datasets.load_from_disk(str(tmp_path / "tok"))["test"], model_dir


def test_server_defaults_to_the_trained_truncation_and_gives_the_stored_ids(tokenized_and_trained):
    test, model_dir = tokenized_and_trained
    served = load_engine(model_dir, InferenceSettings(backend="torch"))
    assert served.encoder.max_length == 40 and served.encoder.truncation == "head_tail"
    assert served.encoder.encode(list(test["text"])) == [list(ids) for ids in test["input_ids"]]
    assert max(len(ids) for ids in test["input_ids"]) == 40  # the long text was truncated


def test_flags_override_the_trained_settings(tokenized_and_trained):
    from transformers import AutoTokenizer

    _, model_dir = tokenized_and_trained
    served = load_engine(model_dir, InferenceSettings(backend="torch", max_length=64, truncation="head"))
    assert served.encoder.max_length == 64 and served.encoder.truncation == "head"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.decode(served.encoder.encode([LONG])[0], skip_special_tokens=True).startswith("opening words")
