"""Small, many-class and imbalanced data: epochs 0 (auto) plans enough optimizer steps, and
class_weighting=balanced weighs the training loss per class."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from textclf.train import TrainSettings, train
from textclf.train import loop as train_module
from textclf.train.model import class_weights
from textclf.train.settings import AUTO_MAX_EPOCHS


@pytest.mark.parametrize(
    "steps_per_epoch, epochs",
    [
        (151, 14),  # TREC-6: 4,823 train questions in batches of 32
        (743, 3),  # IMDB's 23,750 train reviews
        (2000, 1),
        (50_000, 1),  # a large dataset trains once
        (4, AUTO_MAX_EPOCHS),  # a tiny one: capped, early stopping ends it
    ],
)
def test_auto_epochs_plan_at_least_min_train_steps_in_whole_epochs(steps_per_epoch, epochs):
    assert TrainSettings(min_train_steps=2000).with_epochs_for(steps_per_epoch).epochs == epochs


def test_given_epochs_are_kept_and_bad_values_are_named():
    assert TrainSettings(epochs=1).with_epochs_for(5).epochs == 1
    with pytest.raises(ValueError, match="epochs must not be negative"):
        TrainSettings(epochs=-1)
    with pytest.raises(ValueError, match="class_weighting must be one of"):
        TrainSettings(class_weighting="inverse")


def test_balanced_class_weights_follow_scikit_learns_rule():
    from sklearn.utils.class_weight import compute_class_weight

    labels = [0] * 90 + [1] * 10 + [2] * 30
    ours = class_weights(labels, 3, "balanced")
    theirs = compute_class_weight("balanced", classes=np.arange(3), y=np.array(labels))
    assert torch.allclose(ours, torch.tensor(theirs, dtype=torch.float32))
    four = class_weights(labels, 4, "balanced")  # class 3 has no train rows
    assert four[3] == four[1] == four.max(), "a class absent from train weighs like the rarest present one"
    assert class_weights(labels, 3, "none") is None


def test_batch_loss_is_the_class_weighted_cross_entropy(tiny_model_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    batch = {
        "input_ids": torch.tensor([[101, 2204, 102], [101, 2919, 102], [101, 2307, 102]]),
        "attention_mask": torch.ones(3, 3, dtype=torch.long),
        "labels": torch.tensor([0, 1, 1]),
    }
    weights = torch.tensor([3.0, 0.5])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        weighted = train_module.batch_loss(SimpleNamespace(step_model=model, class_weights=weights), batch)
        plain = train_module.batch_loss(SimpleNamespace(step_model=model, class_weights=None), batch)
    assert float(weighted) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, batch["labels"], weight=weights))
    )
    assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, batch["labels"])))
    assert float(plain) != pytest.approx(float(weighted))


def test_balanced_weighting_weighs_the_train_splits_classes(tokenized_dir, tiny_model_dir, tmp_path, monkeypatch):
    import datasets

    seen = []
    real = train_module.batch_loss

    def recording(run, batch):
        seen.append(run.class_weights)
        return real(run, batch)

    monkeypatch.setattr(train_module, "batch_loss", recording)
    settings = TrainSettings(
        base_model=tiny_model_dir, epochs=1, batch_size=16, max_steps=2, class_weighting="balanced"
    )
    train(tokenized_dir, str(tmp_path / "model"), settings, {"labels": ["negative", "positive"]})
    labels = datasets.load_from_disk(tokenized_dir)["train"]["label"]
    assert torch.allclose(seen[0].cpu(), class_weights(labels, 2, "balanced"))
    saved = json.loads((Path(tmp_path / "model") / "training.json").read_text())["settings"]
    assert saved["class_weighting"] == "balanced"


def test_auto_epochs_are_recorded_resolved(tokenized_dir, tiny_model_dir, tmp_path):
    settings = TrainSettings(base_model=tiny_model_dir, epochs=0, min_train_steps=3, batch_size=64, max_steps=4)
    summary = train(tokenized_dir, str(tmp_path / "model"), settings, {"labels": ["negative", "positive"]})
    assert summary["settings"]["epochs"] >= 1 and summary["settings"]["min_train_steps"] == 3


def test_local_runs_keep_the_one_epoch_demo_settings_for_the_generated_sample_only():
    """``make run`` (the generated sample) stays a one-minute demo; a real source gets the pipeline's
    defaults, epochs 0 (auto) included, so that a small dataset trains long enough."""
    from pipelines.run import DEMO_DEFAULTS, local_arguments

    assert local_arguments({}) == DEMO_DEFAULTS == {"max_length": 128, "epochs": 1}
    assert local_arguments({"source": "sample:500"}) == {**DEMO_DEFAULTS, "source": "sample:500"}
    assert local_arguments({"source": "sample:", "epochs": 3})["epochs"] == 3
    assert local_arguments({"source": "../shared/data/trec6/*.csv.gz"}) == {"source": "../shared/data/trec6/*.csv.gz"}
