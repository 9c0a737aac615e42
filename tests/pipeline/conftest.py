"""Fixtures for the training steps: the sample data tokenized with the tiny model's tokenizer, and trained."""

import pytest

from textclf.tokenize import TokenizeSettings, tokenize


@pytest.fixture(scope="session")
def tokenized_dir(sample_parquet, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenized")
    tokenize(sample_parquet[0], str(out), TokenizeSettings(base_model=tiny_model_dir, max_length=64))
    return str(out)


@pytest.fixture(scope="session")
def trained_model(tokenized_dir, sample_parquet, tiny_model_dir, tmp_path_factory):
    """A tiny model trained one epoch by the train step: (model dir, training summary)."""
    from textclf.train import TrainSettings, train

    out = tmp_path_factory.mktemp("train") / "model"
    settings = TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, learning_rate=1e-3, seed=0)
    summary = train(tokenized_dir, str(out), settings, {**sample_parquet[1], "max_length": 64, "truncation": "head"})
    return str(out), summary


@pytest.fixture(scope="session")
def optimized_model(trained_model, tokenized_dir, tmp_path_factory):
    """The trained tiny model through the optimize step: (Model directory with serving.json, its content)."""
    from textclf.optimize import OptimizeSettings, optimize

    out = tmp_path_factory.mktemp("optimize") / "model"
    return str(out), optimize(trained_model[0], tokenized_dir, str(out), OptimizeSettings())
