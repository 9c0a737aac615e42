"""Many-class quality: per-class metrics, weighted F1, top-k accuracy, the lowest class recall, the
most-confused pairs, a heatmap readable at 100 classes, and the gate's per-class recall rule."""

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from textclf.evaluate import compute_metrics, render_report, scalar_metrics
from textclf.gate import GateSettings, decide

NAMES = ["ABBR", "DESC", "LOC"]


def one_hot(predicted, classes=3, sure=0.8):
    probabilities = np.full((len(predicted), classes), (1 - sure) / (classes - 1))
    probabilities[np.arange(len(predicted)), predicted] = sure
    return probabilities


def test_per_class_metrics_match_hand_computed_values():
    labels = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    predicted = [0, 1, 1, 1, 2, 2, 2, 2, 1]
    result = compute_metrics(labels, one_hot(predicted), NAMES)
    abbr, desc, loc = (result["per_class"][name] for name in NAMES)
    assert abbr == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert desc["precision"] == pytest.approx(2 / 4) and desc["recall"] == pytest.approx(2 / 3)
    assert loc["precision"] == pytest.approx(3 / 4) and loc["recall"] == pytest.approx(3 / 4) and loc["support"] == 4
    f1s = [2 / 3, 2 * (1 / 2 * 2 / 3) / (1 / 2 + 2 / 3), 3 / 4]
    assert result["f1"] == pytest.approx(np.mean(f1s))
    assert result["f1_weighted"] == pytest.approx(np.average(f1s, weights=[2, 3, 4]))
    assert result["min_class_recall"] == 0.5 and result["min_recall_class"] == "ABBR"
    assert result["confused_pairs"][0] == {"true": "ABBR", "predicted": "DESC", "count": 1, "share_of_true": 0.5}
    assert {(p["true"], p["predicted"]) for p in result["confused_pairs"]} == {
        ("ABBR", "DESC"),
        ("DESC", "LOC"),
        ("LOC", "DESC"),
    }


def test_top_k_accuracy_counts_the_true_label_among_the_k_likeliest():
    names = [f"c{i}" for i in range(6)]
    probabilities = np.array(
        [
            [0.5, 0.2, 0.1, 0.1, 0.05, 0.05],  # true 1: second
            [0.5, 0.2, 0.15, 0.1, 0.03, 0.02],  # true 3: fourth
            [0.1, 0.1, 0.1, 0.1, 0.1, 0.5],
        ]
    )  # true 5: first
    result = compute_metrics([1, 3, 5], probabilities, names)
    assert result["accuracy"] == pytest.approx(1 / 3)
    assert result["top_3_accuracy"] == pytest.approx(2 / 3) and result["top_5_accuracy"] == 1.0
    binary = compute_metrics([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), ["neg", "pos"])
    assert not any(key.startswith("top_") for key in binary), "top-k needs more than k classes"
    assert set(scalar_metrics(result)) >= {"accuracy", "f1_weighted", "top_3_accuracy", "min_class_recall"}


def images(markdown: str) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(data)))
        for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", markdown)
    ]


def test_the_report_at_100_classes_stays_small_and_its_heatmap_readable():
    """The bug: 7,782 px and 1.4 MB for an intent set. Now at most ~1,400 px and a few hundred KB."""
    rng = np.random.default_rng(0)
    names = [f"intent_{i:03d}_card_payment" for i in range(100)]
    labels = rng.integers(0, 100, 3000)
    logits = rng.normal(size=(3000, 100))
    logits[np.arange(3000), labels] += 3
    result = compute_metrics(labels, np.exp(logits), names)
    report = render_report(result, names, {}, [])
    assert len(report.encode()) < 500_000
    (heatmap,) = images(report)
    assert max(heatmap.size) <= 1500
    assert "## Per-class metrics" in report and "100 classes, worst F1 first" in report
    worst = min(names, key=lambda n: (result["per_class"][n]["f1"], n))
    assert report.index(f"| {worst} |") < report.index("## Confusion matrix")
    assert "### Most-confused pairs" in report and "share of the true class" in report


def test_the_small_heatmap_writes_its_counts():
    result = compute_metrics([0, 1, 2, 2], one_hot([0, 1, 2, 1]), NAMES)
    report = render_report(result, NAMES, {}, [])
    assert "3 classes, in label order" in report and "lowest class recall (LOC)" in report


def gate_metrics(**extra):
    suites = [{"name": "inv_typos", "type": "INV", "description": "", "cases": 10, "passed": 10, "failures": []}]
    serving = {
        "backend": "onnx",
        "validation": {"texts": 500, "label_flips": 0, "flip_rate": 0.0, "max_probability_change": 1e-6},
    }
    return {
        "accuracy": 0.95,
        "f1": 0.9,
        "behaviour": {"label_names": NAMES, "settings": {}, "suites": suites},
        "serving": serving,
        **extra,
    }


def test_the_per_class_recall_rule_is_off_by_default_and_blocks_when_set():
    metrics = gate_metrics(min_class_recall=0.3, min_recall_class="ABBR")
    assert decide(metrics, GateSettings()).passed
    assert "min class recall" not in [rule.name for rule in decide(metrics, GateSettings()).rules]
    blocked = decide(metrics, GateSettings(min_class_recall=0.5))
    assert not blocked.passed and blocked.deciding_rule == "min class recall"
    assert "lowest recall 0.3000 (class ABBR) vs minimum 0.5000" in blocked.rules[1].detail
    assert decide(
        gate_metrics(min_class_recall=0.6, min_recall_class="ABBR"), GateSettings(min_class_recall=0.5)
    ).passed
    missing = decide(gate_metrics(), GateSettings(min_class_recall=0.5))
    assert missing.deciding_rule == "min class recall", "fails closed without the metric"
