"""A 2-layer random BERT (width 32) with the offline MiniLM tokenizer, in the Model artifact's layout
(``save_pretrained`` and the tokenizer, ``id2label`` set) without training: what the tests and the
benchmarks' smoke runs train and serve in seconds."""

from __future__ import annotations

from pathlib import Path


def build_tiny_model(out_dir, labels=("negative", "positive"), seed: int = 0) -> str:
    """Save the tiny model into ``out_dir``; returns its path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from textclf.base_model import resolve_base_model

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model())
    labels = list(labels)
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
    BertForSequenceClassification(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return str(out_dir)


def tiny_model_once(folder: Path, labels=("negative", "positive")) -> str:
    """:func:`build_tiny_model` into ``folder`` unless it holds one already."""
    return str(folder) if (Path(folder) / "config.json").exists() else build_tiny_model(folder, labels)
