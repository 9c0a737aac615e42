"""Tokenize step: lengths, truncation modes, saved splits and tokenizer."""

import datasets
import pytest
from transformers import AutoTokenizer

from components.tokenize import TokenizeSettings, encode, special_token_counts


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def words(n, start=0):
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_head_truncation_keeps_the_start(tokenizer):
    ids = encode(tokenizer, [words(300)], max_length=32)["input_ids"][0]
    assert len(ids) == 32
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert tokenizer.decode(ids[1:4]).startswith("w0")


def test_head_tail_truncation_keeps_start_and_end(tokenizer):
    text = "opening " + words(300) + " verdict terrible"
    ids = encode(tokenizer, [text], max_length=40, truncation="head_tail")["input_ids"][0]
    assert len(ids) == 40
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("opening") and decoded.endswith("verdict terrible")


def test_short_texts_are_not_changed_by_head_tail(tokenizer):
    text = "a short review"
    assert encode(tokenizer, [text], 64, "head_tail") == encode(tokenizer, [text], 64, "head")


def test_special_token_counts_for_bert(tokenizer):
    assert special_token_counts(tokenizer) == (1, 1)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="truncation"):
        TokenizeSettings(truncation="middle")
    with pytest.raises(ValueError, match="max_length"):
        TokenizeSettings(max_length=2)


def test_tokenized_dataset_has_every_split_and_the_tokenizer(tokenized_dir, sample_parquet):
    splits = datasets.load_from_disk(tokenized_dir)
    assert set(splits) == {"train", "validation", "test"}
    rows = sample_parquet[1]["rows"]
    for split, dataset in splits.items():
        assert len(dataset) == rows[split]
        assert {"input_ids", "attention_mask", "label", "text"} <= set(dataset.column_names)
        assert max(len(ids) for ids in dataset["input_ids"]) <= 64
    assert AutoTokenizer.from_pretrained(f"{tokenized_dir}/tokenizer").vocab_size > 1000
