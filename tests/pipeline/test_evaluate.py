"""Evaluate step: metric arithmetic checked by hand, and the files it writes."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from textclf.evaluate import EvaluateSettings, compute_metrics, evaluate


def test_metrics_match_hand_computed_values():
    labels = [0, 0, 1, 1, 1]
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    result = compute_metrics(labels, probabilities, ["neg", "pos"])
    assert result["accuracy"] == pytest.approx(3 / 5)
    assert result["confusion_matrix"] == [[1, 1], [1, 2]]
    # precision: neg 1/2, pos 2/3; recall: neg 1/2, pos 2/3
    assert result["precision"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["recall"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # AUC: positive scores 0.8, 0.7, 0.4 vs negative 0.1, 0.6 -> 5 of 6 pairs ordered right
    assert result["roc_auc"] == pytest.approx(5 / 6)
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.7, 0.4]))
    assert result["loss"] == pytest.approx(expected_loss)
    curve = result["roc_curve"]
    assert curve["fpr"][0] == 0 and curve["tpr"][-1] == 1 and len(curve["fpr"]) == len(curve["thresholds"])


def test_auc_is_nan_when_a_class_is_absent():
    result = compute_metrics([1, 1], np.array([[0.2, 0.8], [0.6, 0.4]]), ["neg", "pos"])
    assert math.isnan(result["roc_auc"]) and result["accuracy"] == 0.5


def test_evaluate_writes_metrics_report_and_champion_comparison(trained_model, tokenized_dir, sample_parquet, tmp_path):
    model_dir, _ = trained_model
    result = evaluate(model_dir, tokenized_dir, str(tmp_path), EvaluateSettings(live_model_uri=model_dir))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == result["accuracy"] and saved["examples"] == sample_parquet[1]["rows"]["test"]
    assert saved["labels"] == ["negative", "positive"]
    sources = {suite["source"] for suite in saved["behaviour"]["suites"]}
    assert sources == {"sentiment", "task-neutral"}, "sentiment labels: the shipped file and the task-neutral suites"
    assert saved["behaviour"]["pass_rates"] == saved["champion"]["behaviour"]["pass_rates"], "the same cases for both"
    # the same model as champion on the same split scores exactly the same
    assert saved["champion"]["accuracy"] == saved["accuracy"]
    report = (tmp_path / "report.md").read_text()
    assert "data:image/png;base64," in report and "Confusion matrix" in report
    assert "Behavioural tests" in report and "Challenger vs champion" in report


def test_an_unscorable_champion_is_recorded_not_hidden(trained_model, tokenized_dir, tmp_path):
    model_dir, _ = trained_model
    result = evaluate(model_dir, tokenized_dir, str(tmp_path), EvaluateSettings(live_model_uri=str(tmp_path / "missing")))
    assert "champion" not in result and "champion_error" in result
    assert "could not be scored" in Path(tmp_path, "report.md").read_text()


def test_scoring_in_batches_gives_the_metrics_of_scoring_at_once(trained_model, tokenized_dir):
    """evaluate reads the test split batch by batch; the metrics must not depend on the batch size."""
    from textclf.evaluate import held_out_batches, score_model

    model_dir, _ = trained_model
    labels = ["negative", "positive"]
    fp32 = EvaluateSettings(scoring_precision="fp32", seed=0)
    small = score_model(model_dir, held_out_batches(tokenized_dir, batch_rows=5), labels, fp32)
    whole = score_model(model_dir, held_out_batches(tokenized_dir, batch_rows=100_000), labels, fp32)
    for name in ("accuracy", "f1", "roc_auc", "confusion_matrix", "examples"):
        assert small[name] == whole[name]
    assert small["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_scoring_precision_is_bf16_only_when_the_probe_keeps_the_probabilities(trained_model, tokenized_dir):
    """auto: bf16 where the hardware has it and the probe texts move by at most the tolerance;
    the choice and its numbers are recorded in metrics.json."""
    from textclf.evaluate import held_out_batches, score_model
    from textclf.train.precision import cpu_has_bf16

    model_dir, _ = trained_model
    labels = ["negative", "positive"]
    batches = held_out_batches(tokenized_dir)
    auto = score_model(model_dir, batches, labels, EvaluateSettings(seed=0))["scoring"]
    if not cpu_has_bf16():
        assert auto["precision"] == "fp32" and auto["reason"] == "no native bf16 here"
        return
    assert 0 <= auto["max_probability_change"] <= 0.02 and auto["precision"] == "bf16"
    assert auto["probe_texts"] == min(256, sum(len(texts) for texts, _ in batches()))
    strict = score_model(model_dir, batches, labels, EvaluateSettings(seed=0, scoring_tolerance=-1.0))["scoring"]
    assert strict["precision"] == "fp32" and "over the tolerance" in strict["reason"]
    forced = score_model(model_dir, batches, labels, EvaluateSettings(seed=0, scoring_precision="fp32"))["scoring"]
    assert forced == {"precision": "fp32", "reason": "asked for"}


def test_scoring_batches_on_cpu_stay_under_the_token_cap_and_keep_every_text_once():
    from textclf.train.data import sorted_batches

    lengths = [5, 300, 10, 400, 3000, 7, 8, 300]
    batches = sorted_batches(lengths, batch_size=3, max_tokens=600)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 3 and (len(batch) * longest <= 600 or len(batch) == 1)
        assert [lengths[i] for i in batch] == sorted(lengths[i] for i in batch)
    assert batches == [[0, 5, 6], [2, 1], [7], [3], [4]]  # 10+300 fit 600; 300+300 would too, but 10 came first
    assert sorted_batches(lengths, batch_size=3) == [[0, 5, 6], [2, 1, 7], [3, 4]]  # no cap: batch size alone


def test_cpu_token_cap_scores_like_one_batch_per_text(trained_model, tokenized_dir):
    """The cap changes only how texts are grouped: each text's logits match scoring it alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.encoding import TextEncoder
    from textclf.predict import predict_logits
    from textclf.train.data import CPU_BATCH_TOKENS, sorted_batches

    model_dir, _ = trained_model
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    encoder = TextEncoder.for_model(model_dir, AutoTokenizer.from_pretrained(model_dir))
    ids = encoder.encode(["good film " * (n % 37 + 1) for n in range(120)])  # up to max_length 64
    grouped = sorted_batches([len(row) for row in ids], 64, CPU_BATCH_TOKENS)
    assert len(grouped) > len(sorted_batches([len(row) for row in ids], 64))  # the cap cut more batches
    capped = predict_logits(model, ids, 64, encoder.pad_id, torch.device("cpu"), "fp32")
    alone = torch.cat([predict_logits(model, [row], 1, encoder.pad_id, torch.device("cpu"), "fp32") for row in ids])
    torch.testing.assert_close(capped, alone, atol=1e-5, rtol=1e-4)


def test_a_spam_model_gets_the_task_neutral_suites_from_its_own_test_texts(tmp_path):
    """No suite file fits ham/spam: the model is tested by edits of its test messages (a typo, case,
    punctuation, whitespace, names, numbers, URLs), and the report says why the sentiment file was not used."""
    from tests.conftest import build_tiny_model
    from textclf.evaluate import score_model

    model_dir = build_tiny_model(tmp_path / "spam-model", labels=["ham", "spam"])
    messages = [f"Hi {name}, call me at 0{7700 + i} 900{i:03d} or see www.example{i}.com, ok?" for i, name in
                enumerate(["Tom", "Maria", "Omar", "Mei"] * 5)] + [f"WINNER!! Claim prize {i} now" for i in range(20)]

    def batches():
        yield messages, [i % 2 for i in range(len(messages))]

    result = score_model(str(model_dir), batches, ["ham", "spam"], EvaluateSettings(scoring_precision="fp32"))
    behaviour = result["behaviour"]
    names = {suite["name"] for suite in behaviour["suites"]}
    assert {"neutral_typos", "neutral_case", "neutral_names_places", "neutral_numbers", "neutral_urls_emails"} <= names
    assert all(suite["source"] == "task-neutral" and suite["type"] == "INV" for suite in behaviour["suites"])
    assert any("sentiment suites not used" in note for note in behaviour["notes"])
    originals = {f["original"] for suite in behaviour["suites"] for f in suite["failures"]}
    assert originals <= set(messages)
