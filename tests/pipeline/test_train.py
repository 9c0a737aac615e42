"""Train step on a tiny random BERT: the saved model, batching, options and resuming."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from textclf.probe import PROBE_SIZE, read_probe_texts
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
        max(lengths[i] for i in b) - min(lengths[i] for i in b)
        for b in length_grouped_batches(lengths, 16, 3, group=False)
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
    probes = read_probe_texts(model_dir)
    validation = pd.read_parquet(sample_parquet[0]).query("split == 'validation'")
    names = ["negative", "positive"]
    assert 0 < len(probes) <= PROBE_SIZE
    assert {(p["text"], p["label"]) for p in probes} <= {
        (t, names[y]) for t, y in zip(validation.text, validation.label)
    }
    assert not checkpoint_dir_for(model_dir).exists(), "checkpoints are removed once the model is saved"


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16", "group_by_length": True},
        {"precision": "fp32", "group_by_length": False, "grad_accum_steps": 2},
    ],
)
def test_train_options_save_a_loadable_model(options, tokenized_dir, tiny_model_dir, tmp_path):
    settings = TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, max_steps=3, **options)
    summary = train(tokenized_dir, str(tmp_path / "model"), settings, {"labels": ["negative", "positive"]})
    assert summary["precision"] == options["precision"]
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").config.num_labels == 2


class Preempted(Exception):
    """Stands in for a node going away in the middle of an epoch."""


def train_killed_after(step, tokenized_dir, output, settings, monkeypatch):
    """Run ``train`` until optimizer step ``step`` is done, then fail the way a preempted task does."""
    real_step = train_module.optimizer_step

    def step_then_die(run):
        real_step(run)
        if run.state["step"] == step:
            raise Preempted(f"killed after step {step}")

    monkeypatch.setattr(train_module, "optimizer_step", step_then_die)
    with pytest.raises(Preempted):
        train(tokenized_dir, output, settings, {"labels": ["negative", "positive"]})
    monkeypatch.setattr(train_module, "optimizer_step", real_step)


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(Path(model_dir) / "model.safetensors"))


# 192 training texts in batches of 16: 12 batches per epoch. Each case kills the run mid-epoch,
# after the last checkpoint, so that the steps since then are lost and must be redone exactly.
@pytest.mark.parametrize(
    "kill_after, options",
    [
        (7, {"checkpoint_every_steps": 5}),  # epoch 1, resumes at batch 5
        (
            9,
            {"checkpoint_every_steps": 4, "grad_accum_steps": 2, "dataloader_workers": 0},
        ),  # epoch 2 (6 steps each), batch 4
    ],
)
def test_a_run_killed_mid_epoch_resumes_at_the_same_batch_and_ends_with_the_same_weights(
    kill_after, options, tokenized_dir, tiny_model_dir, tmp_path, monkeypatch
):
    """Dropout is on (the tiny model's hidden dropout 0.1), so the random state must be restored too."""
    settings = TrainSettings(
        base_model=tiny_model_dir, epochs=2, batch_size=16, learning_rate=1e-3, early_stopping_patience=0, **options
    )
    uninterrupted = train(tokenized_dir, str(tmp_path / "whole"), settings, {"labels": ["negative", "positive"]})

    output = str(tmp_path / "resumed")
    train_killed_after(kill_after, tokenized_dir, output, settings, monkeypatch)
    saved = torch.load(checkpoint_dir_for(output) / "last.pt", weights_only=True)
    every = options["checkpoint_every_steps"]
    assert saved["state"]["step"] == kill_after // every * every
    assert 0 < saved["state"]["batch"] < 12, "the resume point is in the middle of an epoch"

    samplers = []  # each epoch's batch sampler (the DataLoader may iterate it more than once)
    real_iter = train_module.RankBatches.__iter__
    monkeypatch.setattr(train_module.RankBatches, "__iter__", lambda self: samplers.append(self) or real_iter(self))
    resumed = train(tokenized_dir, output, settings, {"labels": ["negative", "positive"]})
    epochs_read = [(s.start, len(s)) for s in dict.fromkeys(samplers)]  # (first batch, batches) per epoch

    assert epochs_read[0][0] == saved["state"]["batch"], "the resumed run starts at the batch it stopped at"
    assert sum(n for _, n in epochs_read) == 24 - (saved["state"]["epoch"] * 12 + saved["state"]["batch"])
    assert resumed["history"] == uninterrupted["history"]
    expected, got = weights(tmp_path / "whole"), weights(output)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)
    assert not checkpoint_dir_for(output).exists()


def test_checkpoints_are_due_by_steps_or_by_minutes(monkeypatch):
    from textclf.train.loop import Run, checkpoint_due

    clock = [1000.0]
    monkeypatch.setattr(train_module.time, "monotonic", lambda: clock[0])
    run = Run(*[None] * 10)
    run.last_checkpoint = 1000.0
    by_steps = TrainSettings(checkpoint_every_steps=3, checkpoint_every_minutes=0)
    by_time = TrainSettings(checkpoint_every_steps=0, checkpoint_every_minutes=2)
    run.state["step"] = 3
    assert checkpoint_due(run, by_steps) and not checkpoint_due(run, by_time)
    run.state["step"] = 4
    clock[0] += 119
    assert not checkpoint_due(run, by_steps) and not checkpoint_due(run, by_time)
    clock[0] += 1
    assert checkpoint_due(run, by_time)


def test_a_resume_point_of_another_world_size_is_refused(tokenized_dir, tiny_model_dir, tmp_path, monkeypatch):
    settings = TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, checkpoint_every_steps=2)
    output = str(tmp_path / "model")
    train_killed_after(3, tokenized_dir, output, settings, monkeypatch)
    saved = torch.load(checkpoint_dir_for(output) / "last.pt", weights_only=True)
    saved["ranks"] = saved["ranks"] * 2  # as if two processes had written it
    torch.save(saved, checkpoint_dir_for(output) / "last.pt")
    with pytest.raises(ValueError, match="written by 2 training processes and this run has 1"):
        train(tokenized_dir, output, settings, {"labels": ["negative", "positive"]})


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="precision"):
        TrainSettings(precision="int4")
    with pytest.raises(ValueError, match="batch_size"):
        TrainSettings(batch_size=0)


def test_head_tail_tokenized_data_trains_and_is_recorded(sample_parquet, tiny_model_dir, tmp_path):
    from textclf.tokenize import TokenizeSettings, tokenize

    metadata = tokenize(
        sample_parquet[0],
        str(tmp_path / "tok"),
        TokenizeSettings(base_model=tiny_model_dir, max_length=24, truncation="head_tail"),
    )
    settings = TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, max_steps=2)
    summary = train(
        str(tmp_path / "tok"), str(tmp_path / "model"), settings, {"labels": ["negative", "positive"], **metadata}
    )
    assert summary["truncation"] == "head_tail" and summary["max_length"] == 24
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").config.id2label[1] == "positive"


def test_attention_dropout_is_off_by_default_and_can_be_kept(trained_model, tiny_model_dir):
    from transformers import AutoConfig

    from textclf.train.model import dropout_overrides

    config = AutoConfig.from_pretrained(trained_model[0])
    assert config.attention_probs_dropout_prob == 0.0
    assert config.hidden_dropout_prob == AutoConfig.from_pretrained(tiny_model_dir).hidden_dropout_prob  # kept: -1
    assert dropout_overrides(tiny_model_dir, attention_dropout=-1, hidden_dropout=-1) == {}
    assert dropout_overrides(tiny_model_dir, attention_dropout=0.05, hidden_dropout=-1) == {
        "attention_probs_dropout_prob": 0.05
    }
    assert dropout_overrides(tiny_model_dir, attention_dropout=-1, hidden_dropout=0.2) == {"hidden_dropout_prob": 0.2}


def test_the_reference_profile_reuses_the_best_validation_pass_and_matches_scoring_the_split_again(
    trained_model, tokenized_dir, tmp_path
):
    """The profile is built from the best epoch's validation probabilities (no second pass); the saved
    weights, scored again through the inference engine, give the same profile."""
    from transformers import AutoTokenizer

    from textclf.data.tokenized import iter_batches
    from textclf.inference import InferenceSettings, load_engine
    from textclf.profile import ReferenceProfileBuilder

    model_dir, summary = trained_model
    saved = json.loads((Path(model_dir) / "profile.json").read_text())
    engine = load_engine(
        model_dir, InferenceSettings(backend="torch" if summary["precision"] == "fp32" else "torch-bf16")
    )
    builder = ReferenceProfileBuilder(["negative", "positive"], AutoTokenizer.from_pretrained(model_dir))
    for batch in iter_batches(tokenized_dir, ["text", "label"], 1000, split="validation"):
        texts = batch.column("text").to_pylist()
        builder.add(texts, batch.column("label").to_pylist(), engine.probabilities(texts))
    again = json.loads(json.dumps(builder.build()))
    assert saved["n_samples"] == again["n_samples"] and saved["labels"] == again["labels"]
    difference = sum(abs(a - b) for a, b in zip(saved["score"]["counts"], again["score"]["counts"]))
    assert difference <= 2  # a score on a bin edge may round across it


def test_the_reference_profile_scores_nothing_when_the_validation_pass_is_at_hand(
    tokenized_dir, tiny_model_dir, monkeypatch, tmp_path
):
    import types

    import numpy as np
    from transformers import AutoTokenizer

    from textclf.data.tokenized import iter_batches
    from textclf.train import model as train_model
    from textclf.train.output import write_reference_profile

    class NoScoring:
        def probabilities_of_ids(self, ids):
            raise AssertionError("the validation split was scored a second time")

    monkeypatch.setattr(train_model, "scoring_engine", lambda *args: NoScoring())
    rows = sum(batch.num_rows for batch in iter_batches(tokenized_dir, ["label"], 1000, split="validation"))
    run = types.SimpleNamespace(model=None, precision="fp32", pad_id=0, best_validation=np.full((rows, 2), 0.5))
    write_reference_profile(
        run, AutoTokenizer.from_pretrained(tiny_model_dir), tokenized_dir, ["negative", "positive"], tmp_path, 8
    )
    assert json.loads((tmp_path / "profile.json").read_text())["n_samples"] == rows
    run.best_validation = np.full((rows + 1, 2), 0.5)
    with pytest.raises(RuntimeError, match=f"has {rows} rows, its validation pass scored {rows + 1}"):
        write_reference_profile(
            run, AutoTokenizer.from_pretrained(tiny_model_dir), tokenized_dir, ["negative", "positive"], tmp_path, 8
        )
