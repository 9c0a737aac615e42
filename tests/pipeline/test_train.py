"""Train step on a tiny random BERT: the saved model, batching, options and resuming."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textclf.train import TrainSettings, train
from textclf.train import loop as train_module
from textclf.train.batches import length_grouped_batches
from textclf.train.checkpoint import checkpoint_dir_for


def test_batches_cover_every_index_once_and_group_lengths():
    lengths = [(i * 37) % 500 for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    random_spread = sum(
        max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in length_grouped_batches(lengths, 16, 3, group=False)
    ) / len(batches)
    assert spread < random_spread / 5
    assert batches == length_grouped_batches(lengths, 16, seed=3)
    assert batches != length_grouped_batches(lengths, 16, seed=4)


def test_trained_model_loads_with_label_names(trained_model, sample_parquet):
    model_dir, summary = trained_model
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.label2id == {"negative": 0, "positive": 1}
    assert (Path(model_dir) / "model.safetensors").exists()
    logits = model(**tokenizer(["a fine film"], return_tensors="pt")).logits
    assert logits.shape == (1, 2)
    training = json.loads((Path(model_dir) / "training.json").read_text())
    assert training["data_fingerprint"] == sample_parquet[1]["fingerprint"]
    assert training["settings"]["epochs"] == 1 and training["max_length"] == 64
    assert training["code_version"] and training["train_samples_per_second"] > 0
    assert len(training["history"]) == 1 and "val_accuracy" in training["history"][0]
    profile = json.loads((Path(model_dir) / "profile.json").read_text())
    assert profile["label_names"] == ["negative", "positive"]
    assert not checkpoint_dir_for(model_dir).exists(), "checkpoints are removed once the model is saved"


@pytest.mark.parametrize("options", [{"precision": "bf16", "group_by_length": True}, {"precision": "fp32", "group_by_length": False, "grad_accum_steps": 2}])
def test_train_options_save_a_loadable_model(options, tokenized_dir, tiny_model_dir, tmp_path):
    settings = TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, max_steps=3, **options)
    summary = train(tokenized_dir, str(tmp_path / "model"), settings, {"labels": ["negative", "positive"]})
    assert summary["precision"] == options["precision"]
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").config.num_labels == 2


def test_a_retried_train_resumes_from_the_last_epoch(tokenized_dir, tiny_model_dir, tmp_path, monkeypatch):
    settings = TrainSettings(base_model=tiny_model_dir, epochs=2, batch_size=16, early_stopping_patience=0)
    real_evaluate = train_module.validate
    calls = []

    def evaluate_then_die(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("node preempted")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_module, "validate", evaluate_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(tokenized_dir, str(tmp_path / "model"), settings, {"labels": ["negative", "positive"]})
    saved = torch.load(checkpoint_dir_for(tmp_path / "model") / "last.pt", weights_only=False)["state"]
    assert saved["epoch"] == 1

    monkeypatch.setattr(train_module, "validate", real_evaluate)
    steps_run = []
    real_collate = train_module.collate
    monkeypatch.setattr(train_module, "collate", lambda rows, pad: steps_run.append(1) or real_collate(rows, pad))
    summary = train(tokenized_dir, str(tmp_path / "model"), settings, {"labels": ["negative", "positive"]})
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert summary["history"][0] == saved["history"][0]
    batches_per_epoch = -(-192 // 16)
    assert len(steps_run) <= batches_per_epoch + 20, "the resumed run trained one epoch, not two"


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="precision"):
        TrainSettings(precision="int4")
    with pytest.raises(ValueError, match="batch_size"):
        TrainSettings(batch_size=0)


def test_head_tail_tokenized_data_trains_and_is_recorded(sample_parquet, tiny_model_dir, tmp_path):
    from textclf.tokenize import TokenizeSettings, tokenize

    metadata = tokenize(sample_parquet[0], str(tmp_path / "tok"), TokenizeSettings(base_model=tiny_model_dir, max_length=24, truncation="head_tail"))
    settings = TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, max_steps=2)
    summary = train(str(tmp_path / "tok"), str(tmp_path / "model"), settings, {"labels": ["negative", "positive"], **metadata})
    assert summary["truncation"] == "head_tail" and summary["max_length"] == 24
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").config.id2label[1] == "positive"


def test_attention_dropout_is_off_by_default_and_can_be_kept(trained_model, tiny_model_dir):
    from transformers import AutoConfig

    from textclf.train.model import attention_dropout_override

    assert AutoConfig.from_pretrained(trained_model[0]).attention_probs_dropout_prob == 0.0
    assert attention_dropout_override(tiny_model_dir, -1) == {}
    assert attention_dropout_override(tiny_model_dir, 0.05) == {"attention_probs_dropout_prob": 0.05}
