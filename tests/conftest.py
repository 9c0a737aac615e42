"""Shared fixtures: everything offline, tiny random-initialised models built on the spot."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

LABELS = ["negative", "positive"]


def build_tiny_model(out_dir, labels=LABELS, seed: int = 0):
    """Save a 2-layer random BERT with the offline MiniLM tokenizer and ``id2label`` set (``bench/tiny_model.py``)."""
    from bench.tiny_model import build_tiny_model as build

    return build(out_dir, labels, seed)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny random BERT classifier (negative/positive): the Model artifact's layout."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def sample_parquet(tmp_path_factory):
    """240 generated reviews ingested by the ingest step: (its folder of Parquet shards, metadata)."""
    from textclf.ingest import IngestSettings, ingest

    path = tmp_path_factory.mktemp("ingest") / "dataset"
    result = ingest(IngestSettings(source="sample:240", seed=1), str(path))
    return str(path), result.metadata
