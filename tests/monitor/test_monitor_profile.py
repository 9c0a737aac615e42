"""Reference profile: contents checked against values computed by hand, JSON round trip, bad inputs."""

import json

import numpy as np
import pytest

from textclf.profile import (
    MAX_MEASURED_CHARS,
    NO_SCRIPT,
    PROFILE_FORMAT,
    ProfileError,
    bin_index,
    build_reference_profile,
    dominant_script,
    histogram,
    load_profile,
    quantile_edges,
    save_profile,
    text_features,
)

LABELS = ["negative", "positive"]


def test_text_features_by_hand(tokenizer):
    # MiniLM's WordPiece: "hello ☃ world" -> hello [UNK] world; the snowman is the one non-ASCII char
    hello, cyr, digits = text_features(["hello ☃ world", "Привет", "123 456"], tokenizer)
    assert (hello.n_tokens, hello.n_unknown, hello.n_ascii, hello.n_chars, hello.script) == (3, 1, 12, 13, "LATIN")
    assert cyr.script == "CYRILLIC" and cyr.n_ascii == 0 and cyr.n_unknown == 0
    assert digits.script == NO_SCRIPT
    assert text_features([], tokenizer) == []


def test_dominant_script_is_the_majority_of_letters():
    assert dominant_script("ab где") == "CYRILLIC"
    assert dominant_script("日本 ok") == "CJK"
    assert dominant_script("!!! 42") == NO_SCRIPT


def test_bins_clip_values_outside_the_edges():
    edges = [0.0, 10.0, 20.0, 30.0]
    assert [bin_index(edges, v) for v in (-5, 0, 9.9, 10, 29, 30, 1000)] == [0, 0, 0, 1, 2, 2, 2]
    assert histogram([1, 15, 25, 99], edges) == [1, 1, 2]


def test_quantile_edges_are_increasing_and_cover_the_values():
    edges = quantile_edges(list(range(1, 101)), 4)
    assert edges == [0.0, 26.0, 51.0, 76.0, 101.0]
    assert quantile_edges([7, 7, 7], 10) == [0.0, 7.0, 8.0]  # duplicates collapse, still two bins or more


def test_profile_contents(tokenizer):
    texts = ["good film", "bad film", "bad bad film", "Привет"]
    labels = [1, 0, 0, 0]
    probabilities = np.array([[0.1, 0.9], [0.8, 0.2], [0.55, 0.45], [0.3, 0.7]])
    profile = build_reference_profile(texts, labels, LABELS, probabilities, tokenizer, length_bins=2)

    assert profile["format"] == PROFILE_FORMAT and profile["n_samples"] == 4
    assert profile["labels"]["true_share"] == {"negative": 0.75, "positive": 0.25}
    assert profile["labels"]["predicted_share"] == {"negative": 0.5, "positive": 0.5}
    # scores 0.9, 0.8, 0.55, 0.7 in 20 bins of width 0.05: bins 18, 16, 11, 14
    counts = profile["score"]["counts"]
    assert sum(counts) == 4 and [i for i, c in enumerate(counts) if c] == [11, 14, 16, 18]
    # tokens: good film=2, bad film=2, bad bad film=3, Привет=6 WordPieces (п ##р ##и ##в ##е ##т)
    assert profile["tokens"]["mean"] == pytest.approx((2 + 2 + 3 + 6) / 4)
    assert sum(profile["tokens"]["counts"]) == 4
    assert profile["unknown_token_rate"] == 0.0
    # ASCII share per text (one vote each): 1, 1, 1 and 0 for the Cyrillic one
    assert profile["charset"]["ascii_share"] == pytest.approx(0.75)
    assert profile["charset"]["script_share"] == {"LATIN": 0.75, "CYRILLIC": 0.25}
    json.dumps(profile)  # JSON-able as it is


def test_rates_give_each_text_one_vote(tokenizer):
    """A long text weighs what a short one does: a rate summed over tokens would be 1000 / 1002 here."""
    texts = ["good film", "☃ " * 1000]  # 2 tokens, no [UNK]; 1000 tokens, all [UNK]
    profile = build_reference_profile(
        texts, [0, 1], LABELS, np.array([[0.6, 0.4], [0.3, 0.7]]), tokenizer, length_bins=2
    )
    assert profile["unknown_token_rate"] == pytest.approx(0.5)
    # ASCII: "good film" all ASCII; the snowman text is half spaces
    assert profile["charset"]["ascii_share"] == pytest.approx((1 + 0.5) / 2)


def test_texts_are_measured_on_their_first_characters(tokenizer):
    head = ("word " * MAX_MEASURED_CHARS)[:MAX_MEASURED_CHARS]  # ends in "word" or a space: no [UNK]
    (long,) = text_features([head + "☃" * 100_000], tokenizer)
    assert long.n_chars == MAX_MEASURED_CHARS and long.n_unknown == 0 and long.n_ascii == MAX_MEASURED_CHARS


def test_save_and_load_round_trip(tmp_path, reference_profile):
    path = save_profile(reference_profile, tmp_path)
    assert path.name == "profile.json"
    assert load_profile(tmp_path) == reference_profile
    assert load_profile(path) == reference_profile


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no reference profile"),
        ("{not json", "is not JSON"),
        ('{"format": "other"}', "format 'other'"),
        (json.dumps({"format": PROFILE_FORMAT}), "missing sections"),
        (json.dumps({"format": "textclf-reference-profile/v1"}), "v2 averages the rates per text"),
    ],
)
def test_load_rejects_bad_files(tmp_path, content, message):
    if content is not None:
        (tmp_path / "profile.json").write_text(content)
    with pytest.raises(ProfileError, match=message):
        load_profile(tmp_path)


def test_load_rejects_inconsistent_histograms(tmp_path, reference_profile):
    broken = json.loads(json.dumps(reference_profile))
    broken["score"]["counts"] = broken["score"]["counts"][:-1]
    save_profile(broken, tmp_path)
    with pytest.raises(ProfileError, match="score histogram"):
        load_profile(tmp_path)


@pytest.mark.parametrize(
    "texts, labels, probabilities, message",
    [
        ([], [], np.zeros((0, 2)), "empty split"),
        (["a", "b"], [0], np.full((2, 2), 0.5), "1 labels for 2 texts"),
        (["a"], [0], np.full((1, 3), 0.3), r"shape \(1, 3\), expected \(1, 2\)"),
        (["a"], [2], np.full((1, 2), 0.5), "out of range"),
        (["a"], [0], np.array([[np.nan, 0.5]]), "NaN"),
    ],
)
def test_bad_inputs_are_named(tokenizer, texts, labels, probabilities, message):
    with pytest.raises(ProfileError, match=message):
        build_reference_profile(texts, labels, LABELS, probabilities, tokenizer)


def test_a_profile_built_in_batches_equals_the_one_built_at_once(tokenizer):
    """The train step profiles a held-out split batch by batch; the monitor must not see a difference."""
    from tests.monitor.conftest import fake_probabilities, review_texts
    from textclf.profile import ReferenceProfileBuilder

    texts = review_texts(230, seed=4) + ["Привет мир", "x" * 300]
    probabilities = fake_probabilities(len(texts), seed=4)
    labels = [i % 2 for i in range(len(texts))]
    at_once = build_reference_profile(texts, labels, LABELS, probabilities, tokenizer)
    builder = ReferenceProfileBuilder(LABELS, tokenizer)
    for start in range(0, len(texts), 17):
        builder.add(texts[start : start + 17], labels[start : start + 17], probabilities[start : start + 17])
    in_batches = builder.build()
    for profile in (at_once, in_batches):
        profile.pop("created_at")
    assert in_batches == at_once
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert at_once["tokens"]["edges"] == quantile_edges(lengths, 10)
    assert at_once["tokens"]["p95"] == float(np.quantile(lengths, 0.95))
