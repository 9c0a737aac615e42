"""Evaluate step: metric arithmetic checked by hand, the files it writes, and that it scores with the
backend that serves."""

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
    result = evaluate(
        model_dir, tokenized_dir, str(tmp_path), EvaluateSettings(live_model_uri=str(tmp_path / "missing"))
    )
    assert "champion" not in result and "champion_error" in result
    assert "could not be scored" in Path(tmp_path, "report.md").read_text()


def test_scoring_in_batches_gives_the_metrics_of_scoring_at_once(trained_model, tokenized_dir):
    """evaluate reads the test split batch by batch; the metrics must not depend on the batch size."""
    from textclf.evaluate import held_out_batches, score_model

    model_dir, _ = trained_model
    labels = ["negative", "positive"]
    fp32 = EvaluateSettings(serving_backend="torch", seed=0)
    small = score_model(model_dir, held_out_batches(tokenized_dir, batch_rows=5), labels, fp32)
    whole = score_model(model_dir, held_out_batches(tokenized_dir, batch_rows=100_000), labels, fp32)
    for name in ("accuracy", "f1", "roc_auc", "confusion_matrix", "examples"):
        assert small[name] == whole[name]
    assert small["loss"] == pytest.approx(whole["loss"], rel=1e-6)


def test_evaluate_scores_with_the_serving_backend_and_writes_every_prediction(optimized_model, tokenized_dir, tmp_path):
    """metrics.json names the optimize step's backend with its validation agreement, and
    predictions.parquet holds each test text's row, label and the engine's probabilities for it."""
    import pandas as pd
    import pyarrow.parquet as pq

    from textclf.data.tokenized import iter_batches
    from textclf.inference import InferenceSettings, load_engine

    model_dir, optimized = optimized_model
    result = evaluate(model_dir, tokenized_dir, str(tmp_path))
    serving = json.loads((tmp_path / "metrics.json").read_text())["serving"]
    assert serving["backend"] == optimized["backend"] and serving["requested"] == "auto"
    assert serving["validation"] == optimized["backends"][optimized["backend"]]
    assert serving["reason"] == optimized["reason"] and serving["test_texts_per_second"] > 0
    test = pd.concat(batch.to_pandas() for batch in iter_batches(tokenized_dir, ["text", "label"], 1000, split="test"))
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    assert predictions["row"].tolist() == list(range(len(test))) == list(range(result["examples"]))
    assert predictions["label"].tolist() == test["label"].tolist()
    expected = load_engine(model_dir, InferenceSettings(backend=optimized["backend"])).probabilities(
        test["text"].tolist()
    )
    got = np.stack(predictions["probabilities"].to_numpy())
    assert np.abs(got - expected).max() < 1e-6 and (predictions["predicted"] == expected.argmax(1)).all()
    assert json.loads(pq.read_schema(tmp_path / "predictions.parquet").metadata[b"labels"]) == ["negative", "positive"]
    assert result["accuracy"] == pytest.approx((predictions["predicted"] == predictions["label"]).mean())
    report = (tmp_path / "report.md").read_text()
    assert f"Scored with **{optimized['backend']}**" in report and "Most confident mistakes" in report


def test_a_named_backend_is_scored_and_an_unmeasured_one_has_no_agreement(optimized_model, tokenized_dir, tmp_path):
    from textclf.evaluate import held_out_batches, score_model

    model_dir, optimized = optimized_model
    labels = ["negative", "positive"]
    int8 = score_model(
        model_dir, held_out_batches(tokenized_dir), labels, EvaluateSettings(serving_backend="onnx-int8")
    )
    assert int8["serving"]["backend"] == "onnx-int8"
    assert int8["serving"]["validation"] == optimized["backends"]["onnx-int8"]
    plain = score_model(
        model_dir, held_out_batches(tokenized_dir), labels, EvaluateSettings(serving_backend="torch-bf16")
    )
    if "flip_rate" not in optimized["backends"]["torch-bf16"]:  # left out on this CPU: the gate will fail closed
        assert plain["serving"]["validation"] is None
    with pytest.raises(ValueError, match="serving_backend must be auto or one of"):
        EvaluateSettings(serving_backend="fp16")


def test_mistakes_keep_the_most_confident_wrong_predictions():
    from textclf.evaluate import ConfidentMistakes

    mistakes = ConfidentMistakes(size=2)
    mistakes.add(["a", "b", "c"], [0, 1, 0], np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4]]))
    mistakes.add(["d | e", "f"], [0, 1], np.array([[0.05, 0.95], [0.3, 0.7]]))
    section = mistakes.section(["neg", "pos"])
    assert [entry[1] for entry in sorted(mistakes.heap, reverse=True)] == [3, 0]  # rows, most confident first
    assert "d \\| e" in section and "| 3 | neg | pos | 0.950 |" in section
    assert "None: every test text" in ConfidentMistakes().section(["neg", "pos"])


def test_a_spam_model_gets_the_task_neutral_suites_from_its_own_test_texts(tmp_path):
    """No suite file fits ham/spam: the model is tested by edits of its test messages (a typo, case,
    punctuation, whitespace, names, numbers, URLs), and the report says why the sentiment file was not used."""
    from tests.conftest import build_tiny_model
    from textclf.evaluate import score_model

    model_dir = build_tiny_model(tmp_path / "spam-model", labels=["ham", "spam"])
    messages = [
        f"Hi {name}, call me at 0{7700 + i} 900{i:03d} or see www.example{i}.com, ok?"
        for i, name in enumerate(["Tom", "Maria", "Omar", "Mei"] * 5)
    ] + [f"WINNER!! Claim prize {i} now" for i in range(20)]

    def batches():
        yield messages, [i % 2 for i in range(len(messages))]

    result = score_model(str(model_dir), batches, ["ham", "spam"], EvaluateSettings(serving_backend="torch"))
    behaviour = result["behaviour"]
    names = {suite["name"] for suite in behaviour["suites"]}
    assert {"neutral_typos", "neutral_case", "neutral_names_places", "neutral_numbers", "neutral_urls_emails"} <= names
    assert all(suite["source"] == "task-neutral" and suite["type"] == "INV" for suite in behaviour["suites"])
    assert any("sentiment suites not used" in note for note in behaviour["notes"])
    originals = {f["original"] for suite in behaviour["suites"] for f in suite["failures"]}
    assert originals <= set(messages)
