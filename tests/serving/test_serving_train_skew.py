"""Train/serve skew: the server truncates exactly as the tokenize step did for training."""

import json

import pytest
from transformers import AutoTokenizer

from components.tokenize import HEAD_SHARE, encode
from serving import classifier as serving_classifier
from serving.classifier import InferenceSettings, TextClassifier

TEXTS = ["short one", "opening words " + " ".join(f"w{i}" for i in range(400)) + " final verdict terrible"]


@pytest.fixture
def trained_dir(tiny_model_dir, tmp_path):
    """The tiny model with a training.json saying how it was tokenized."""
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "training.json").write_text(json.dumps({"max_length": 40, "truncation": "head_tail"}))
    return model_dir


def test_head_share_is_the_same_in_training_and_serving():
    assert serving_classifier.HEAD_SHARE == HEAD_SHARE


def test_server_defaults_to_the_trained_truncation_and_gives_the_same_ids(trained_dir, tmp_path):
    served = TextClassifier(trained_dir, InferenceSettings(bf16="off", cache_dir=str(tmp_path)))
    assert served.max_length == 40 and served.truncation == "head_tail"
    trained = encode(AutoTokenizer.from_pretrained(trained_dir), TEXTS, 40, "head_tail")["input_ids"]
    assert served.encode(TEXTS) == trained


def test_flags_override_the_trained_settings(trained_dir, tmp_path):
    served = TextClassifier(trained_dir, InferenceSettings(bf16="off", max_length=64, truncation="head", cache_dir=str(tmp_path)))
    assert served.max_length == 64 and served.truncation == "head"
    assert served.encode(TEXTS) == encode(AutoTokenizer.from_pretrained(trained_dir), TEXTS, 64, "head")["input_ids"]
