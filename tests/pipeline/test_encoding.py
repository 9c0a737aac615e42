"""The one text encoding (textclf.encoding) and the tokenize step that stores it."""

import datasets
import pytest
from transformers import AutoTokenizer

from textclf.encoding import CHARS_PER_TOKEN, TextEncoder
from textclf.tokenize import TokenizeSettings


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def words(n, start=0):
    return " ".join(f"w{i}" for i in range(start, start + n))


def test_head_truncation_is_the_tokenizers_own(tokenizer):
    """Checked against the Hugging Face tokenizer's own truncation, an implementation we did not write."""
    texts = [words(300), "a short review", words(31)]
    assert TextEncoder(tokenizer, 32).encode(texts) == tokenizer(texts, truncation=True, max_length=32)["input_ids"]


def test_head_tail_truncation_keeps_start_and_end(tokenizer):
    text = "opening " + words(300) + " verdict terrible"
    encoder = TextEncoder(tokenizer, 40, "head_tail")
    [ids] = encoder.encode([text])
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == [
        tokenizer.cls_token_id,
        *full[: encoder.head_tokens],
        *full[-(38 - encoder.head_tokens) :],
        tokenizer.sep_token_id,
    ]
    assert encoder.head_tokens == 38 // 4
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("opening") and decoded.endswith("verdict terrible")


def test_short_texts_are_not_changed_by_head_tail(tokenizer):
    text = "a short review"
    assert TextEncoder(tokenizer, 64, "head_tail").encode([text]) == TextEncoder(tokenizer, 64).encode([text])


def test_long_texts_are_cut_by_characters_before_tokenizing_without_changing_the_kept_tokens(tokenizer):
    long_text = words(20_000)  # ~150k characters, far past 32 tokens' worth
    for truncation in ("head", "head_tail"):
        encoder = TextEncoder(tokenizer, 32, truncation)
        assert len(encoder.cut(long_text)) <= encoder.room * CHARS_PER_TOKEN + 1
        full = tokenizer(long_text, add_special_tokens=False)["input_ids"]
        head = encoder.head_tokens if truncation == "head_tail" else encoder.room
        expected = full[:head] + (full[len(full) - (encoder.room - head) :] if truncation == "head_tail" else [])
        assert encoder.encode([long_text]) == [[tokenizer.cls_token_id, *expected, tokenizer.sep_token_id]]
    huge = "bad " * 1_000_000  # 4 MB: cut first, so it costs what a few kilobytes cost
    assert len(TextEncoder(tokenizer, 32).encode([huge])[0]) == 32


def test_the_tokenizer_object_is_not_changed(tokenizer):
    before = tokenizer.backend_tokenizer.to_str()
    TextEncoder(tokenizer, 16).encode(["some text"])
    assert tokenizer.backend_tokenizer.to_str() == before


def test_bad_settings_are_named(tokenizer):
    with pytest.raises(ValueError, match="truncation"):
        TokenizeSettings(truncation="middle")
    with pytest.raises(ValueError, match="max_length"):
        TokenizeSettings(max_length=2)
    with pytest.raises(ValueError, match="head_tokens"):
        TextEncoder(tokenizer, 16, "head_tail", head_tokens=20)


def test_tokenized_dataset_has_every_split_and_the_tokenizer(tokenized_dir, sample_parquet):
    splits = datasets.load_from_disk(tokenized_dir)
    assert set(splits) == {"train", "validation", "test"}
    rows = sample_parquet[1]["rows"]
    for split, dataset in splits.items():
        assert len(dataset) == rows[split]
        assert {"input_ids", "attention_mask", "label", "text"} <= set(dataset.column_names)
        assert max(len(ids) for ids in dataset["input_ids"]) <= 64
    assert AutoTokenizer.from_pretrained(f"{tokenized_dir}/tokenizer").vocab_size > 1000


@pytest.mark.parametrize("truncation", ["head", "head_tail"])
def test_spans_point_at_the_original_characters_of_the_kept_tokens(tokenizer, truncation):
    """``encode_spans`` keeps the ids of ``encode`` and maps each kept token back to the text,
    checked against the Hugging Face tokenizer's own ``offset_mapping`` and ``word_ids``."""
    short = "Wonderful, wasn't it? Café au lait!"
    long = "opening words " + words(300) + " verdict terrible"
    encoder = TextEncoder(tokenizer, 40, truncation)
    encoded = encoder.encode_spans([short, long])
    assert [each.ids for each in encoded] == encoder.encode([short, long])
    full = tokenizer(short, add_special_tokens=False, return_offsets_mapping=True)
    assert encoded[0].spans == [tuple(span) for span in full["offset_mapping"]]
    assert encoded[0].word_ids == full.word_ids()
    assert not encoded[0].truncated and encoded[1].truncated
    pieces = [encoded[1].text[start:end] for start, end in encoded[1].spans]
    assert pieces == [token.removeprefix("##") for token in tokenizer.convert_ids_to_tokens(encoded[1].ids[1:-1])]
    assert pieces[:3] == ["opening", "words", "w"]
    if truncation == "head_tail":
        assert pieces[-2:] == ["verdict", "terrible"]


def test_spans_of_a_text_cut_by_characters_land_in_the_original_text(tokenizer):
    text = "start " + words(20_000) + " the last words"  # far past the character cut
    [encoded] = TextEncoder(tokenizer, 32, "head_tail").encode_spans([text])
    pieces = [text[start:end] for start, end in encoded.spans]
    assert pieces[0] == "start" and pieces[-3:] == ["the", "last", "words"]
    assert encoded.truncated and all(end <= len(text) for _, end in encoded.spans)
