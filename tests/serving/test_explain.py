"""Integrated gradients per word (textclf.explain): pinned to Captum's, complete, on what the model saw.

Captum's ``LayerIntegratedGradients`` (an implementation we did not write) is the reference for the
numbers; completeness (attributions add up to the probability's change from the baseline) and
the word spans are checked on their own; the integration test checks on a fine-tuned MiniLM that
a clearly positive and a clearly negative word pull the positive probability in opposite directions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from tests.serving.conftest import TEXTS
from textclf.encoding import TextEncoder
from textclf.explain import Explainer, log_odds_of
from textclf.inference import InferenceSettings, load_engine

LABELS = ["negative", "positive"]


def explainer(model_dir, max_length=128, truncation="head", max_batch_tokens=4096) -> Explainer:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return Explainer(model, TextEncoder(tokenizer, max_length, truncation), LABELS, max_batch_tokens)


@pytest.mark.parametrize("label", LABELS)
def test_attributions_match_captum(decisive_model_dir, label):
    from captum.attr import LayerIntegratedGradients

    # A small token budget, so that the integration runs in several chunks.
    ours = explainer(decisive_model_dir, max_batch_tokens=100)
    model = ours.model
    target = LABELS.index(label)
    reference = LayerIntegratedGradients(
        lambda ids: log_odds_of(model(input_ids=ids).logits, target), model.get_input_embeddings()
    )
    for text, explanation in zip(ours.encoder.encode_spans(TEXTS[:4]), ours.explain(TEXTS[:4], steps=24, label=label)):
        ids = torch.tensor([text.ids])
        baseline = ids.clone()
        baseline[0, 1:-1] = ours.encoder.pad_id
        tokens = (
            reference.attribute(ids, baselines=baseline, n_steps=24, method="gausslegendre")
            .sum(-1)[0, 1:-1]
            .detach()
            .numpy()
        )
        # Every word here is one token except where the tokenizer splits it: compare per word.
        per_word = np.zeros(len(explanation.words))
        word_index, previous = -1, None
        for word_id, value in zip(text.word_ids, tokens):
            word_index += word_id != previous
            per_word[word_index] += value
            previous = word_id
        assert explanation.explained_label == label
        assert [word.attribution for word in explanation.words] == pytest.approx(per_word.tolist(), abs=2e-5)


def test_attributions_add_up_and_words_are_the_texts_own(decisive_model_dir):
    explanations = explainer(decisive_model_dir).explain(TEXTS, steps=64)
    positive = explainer(decisive_model_dir).explain(TEXTS, steps=64, label="positive")
    for text, explanation, toward_positive in zip(TEXTS, explanations, positive):
        assert explanation.label == LABELS[int(np.argmax(explanation.probabilities))]
        assert explanation.explained_label == explanation.label  # the predicted label by default
        total = sum(word.attribution for word in explanation.words)
        change = explanation.log_odds - explanation.baseline_log_odds
        assert total - change == pytest.approx(explanation.convergence_delta, abs=1e-5)
        assert abs(explanation.convergence_delta) < 1e-3 and not explanation.truncated
        p = max(explanation.probabilities)
        assert explanation.log_odds == pytest.approx(np.log(p / (1 - p)), abs=1e-4)
        assert all(text[word.start : word.end] == word.word for word in explanation.words)
        # Words in order, covering the text but for the whitespace between them.
        assert "".join(word.word for word in explanation.words) == "".join(text.split())
        # Two labels: the log-odds of one are minus the other's, and so are the attributions.
        sign = 1 if explanation.label == "positive" else -1
        assert [sign * word.attribution for word in explanation.words] == pytest.approx(
            [word.attribution for word in toward_positive.words], abs=1e-5
        )
    assert max(abs(word.attribution) for each in explanations for word in each.words) > 0.05  # not all ~0


def test_a_truncated_text_is_explained_as_the_model_saw_it(decisive_model_dir):
    text = "Opening words here. " + "bad " * 200 + "The closing verdict."
    [explanation] = explainer(decisive_model_dir, max_length=16, truncation="head_tail").explain([text], steps=32)
    assert explanation.truncated
    seen = [word.word for word in explanation.words]
    assert (
        len(seen) == 14 and seen[:3] == ["Opening", "words", "here"] and seen[-4:] == ["The", "closing", "verdict", "."]
    )
    assert all(text[word.start : word.end] == word.word for word in explanation.words)
    # The same probabilities as the served prediction with that truncation.
    served = load_engine(decisive_model_dir, InferenceSettings(backend="torch", max_length=16, truncation="head_tail"))
    assert explanation.probabilities == pytest.approx(served.probabilities([text])[0].tolist(), abs=1e-4)


def test_limits_of_the_core_are_named(decisive_model_dir):
    ours = explainer(decisive_model_dir)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        ours.explain(["fine"], steps=0)
    with pytest.raises(ValueError, match="unknown label 'neutral'"):
        ours.explain(["fine"], steps=4, label="neutral")


@pytest.mark.integration
def test_positive_and_negative_words_pull_opposite_ways_on_fine_tuned_minilm():
    """The offline MiniLM fine-tuned for a few steps on short sentences built from the sample
    data's words, without "wonderful" and "terrible": the model has to place them itself."""
    torch.manual_seed(0)
    # One thread: two stall whenever another process holds a core, which on a shared CI runner
    # multiplies this test's time by several.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tokenizer = fine_tune_on_short_reviews()
        ours = Explainer(model, TextEncoder(tokenizer, 64), LABELS)
        good, bad = ours.explain(["The acting was wonderful.", "The acting was terrible."], steps=128, label="positive")
    finally:
        torch.set_num_threads(threads)
    assert (good.label, bad.label) == ("positive", "negative")
    words = {word.word: word.attribution for word in good.words}, {word.word: word.attribution for word in bad.words}
    assert words[0]["wonderful"] > 0 > words[1]["terrible"]
    # The sentiment word moves the log-odds most, and the quadrature has converged.
    assert all(max(each, key=lambda word: abs(each[word])) in {"wonderful", "terrible"} for each in words)
    for explanation in (good, bad):
        assert abs(explanation.convergence_delta) < 0.05 * abs(explanation.log_odds - explanation.baseline_log_odds)


def fine_tune_on_short_reviews():
    """MiniLM after 10 steps on 320 sentences "The <subject> was <adjective>." from the sample
    data's word lists, without "wonderful" and "terrible"."""
    import random

    from textclf import sample_data
    from textclf.base_model import resolve_base_model

    rng = random.Random(0)
    held_out = {"wonderful", "terrible"}
    sentences = []
    for index in range(320):
        label = LABELS[index % 2]
        subject = rng.choice(sample_data.SUBJECTS[rng.choice(list(sample_data.SUBJECTS))])
        adjective = rng.choice([word for word in sample_data.ADJECTIVES[label] if word not in held_out])
        sentences.append((f"The {subject} was {rng.choice(sample_data.INTENSIFIERS)}{adjective}.", index % 2))
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model())
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_base_model(), num_labels=2, id2label=dict(enumerate(LABELS))
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    model.train()
    for start in range(0, len(sentences), 32):  # 10 steps
        batch = sentences[start : start + 32]
        inputs = tokenizer([text for text, _ in batch], padding=True, return_tensors="pt")
        loss = model(**inputs, labels=torch.tensor([label for _, label in batch])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tokenizer
