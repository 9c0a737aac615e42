"""Shared fixtures: everything offline, tiny random-initialised models built on the spot."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

LABELS = ["negative", "positive"]


def build_tiny_model(out_dir, labels=LABELS, seed: int = 0):
    """Save a 2-layer random BERT with the offline MiniLM tokenizer and ``id2label`` set.

    It is the Model artifact's layout (``save_pretrained`` + tokenizer) without training.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from textclf.base_model import resolve_base_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


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
