"""Evaluate step: the trained model on the held-out test split.

Writes the numbers the gate decides on (``metrics.json``), the confusion matrix and ROC curve for
the KFP UI, and a Markdown report a person reads before trusting the model.
"""

import json
import logging
import math
import time
from pathlib import Path

from kfp import dsl

from components.images import cpu_step
from components.report import figure_markdown, markdown_table, new_figure

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
ROC_POINTS = 101  # the KFP UI draws the curve from a list; a few hundred points are plenty


def compute_metrics(labels, probabilities, label_names: list[str]) -> dict:
    """Accuracy, macro F1/precision/recall, ROC AUC, loss, confusion matrix and (binary) ROC curve."""
    import numpy as np
    from sklearn import metrics as skm

    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predicted = probabilities.argmax(axis=1)
    ids = list(range(len(label_names)))
    result = {
        "accuracy": skm.accuracy_score(labels, predicted),
        "f1": skm.f1_score(labels, predicted, average="macro", labels=ids, zero_division=0),
        "precision": skm.precision_score(labels, predicted, average="macro", labels=ids, zero_division=0),
        "recall": skm.recall_score(labels, predicted, average="macro", labels=ids, zero_division=0),
        "loss": skm.log_loss(labels, np.clip(probabilities, 1e-12, 1), labels=ids),
        "roc_auc": math.nan,
        "examples": int(len(labels)),
    }
    if len(set(labels.tolist())) == len(label_names):  # AUC is undefined when a class is absent
        if len(label_names) == 2:
            result["roc_auc"] = skm.roc_auc_score(labels, probabilities[:, 1])
        else:
            result["roc_auc"] = skm.roc_auc_score(labels, probabilities, multi_class="ovr", labels=ids)
    result = {k: float(v) if k != "examples" else v for k, v in result.items()}
    result["confusion_matrix"] = skm.confusion_matrix(labels, predicted, labels=ids).tolist()
    if len(label_names) == 2:
        result["roc_curve"] = roc_points(labels, probabilities[:, 1])
    return result


def roc_points(labels, scores) -> dict:
    """The ROC curve at evenly spaced thresholds (from 1 down to 0): fpr, tpr, threshold lists."""
    import numpy as np

    thresholds = np.linspace(1.0, 0.0, ROC_POINTS)
    positives = max(int((labels == 1).sum()), 1)
    negatives = max(int((labels == 0).sum()), 1)
    tpr = [float(((scores >= t) & (labels == 1)).sum() / positives) for t in thresholds]
    fpr = [float(((scores >= t) & (labels == 0)).sum() / negatives) for t in thresholds]
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds.tolist()}


def confusion_plot(matrix, label_names: list[str]) -> str:
    fig, ax = new_figure(1.2 * len(label_names) + 2.5, 1.2 * len(label_names) + 2)
    ax.imshow(matrix, cmap="Blues")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, count, ha="center", va="center", color="white" if count > peak / 2 else "black")
    ax.set_xticks(range(len(label_names)), label_names, rotation=30)
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test split)")
    return figure_markdown(fig, "confusion matrix")


def roc_plot(curve: dict, auc: float) -> str:
    fig, ax = new_figure()
    ax.plot(curve["fpr"], curve["tpr"], label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (test split)")
    ax.legend(loc="lower right")
    return figure_markdown(fig, "ROC curve")


def render_report(result: dict, label_names: list[str], training: dict, sections: list[str]) -> str:
    headline = ["accuracy", "f1", "precision", "recall", "roc_auc", "loss"]
    parts = [
        "# Evaluation report",
        f"Model trained from `{training.get('base_model')}` on data `{training.get('data_fingerprint')}`, "
        f"code `{training.get('code_version')}`; {result['examples']} test examples.",
        markdown_table(["metric", "value"], [[name, f"{result[name]:.4f}"] for name in headline]),
        "## Confusion matrix",
        confusion_plot(result["confusion_matrix"], label_names),
    ]
    if "roc_curve" in result:
        parts += ["## ROC curve", roc_plot(result["roc_curve"], result["roc_auc"])]
    return "\n\n".join(parts + sections) + "\n"


def predict_probabilities(model_dir: str, rows: list[dict], batch_size: int = 64):
    """Class probabilities for tokenized ``rows`` with the model in fp32 (the accuracy of record)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from components.train import predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    logits = predict_logits(model, rows, batch_size, tokenizer.pad_token_id, torch.device("cpu"), "fp32")
    return torch.softmax(logits, dim=-1).numpy()


def evaluate(model_dir: str, tokenized_dir: str, output_dir: str) -> dict:
    """Evaluate the model on the test split and write ``metrics.json`` and ``report.md``.

    Args:
        model_dir: the train step's Model directory.
        tokenized_dir: the tokenize step's output (its ``test`` split is used).
        output_dir: where ``metrics.json`` and ``report.md`` are written.

    Returns:
        The metrics (also in ``metrics.json``), confusion matrix and ROC curve included.
    """
    import datasets

    test = datasets.load_from_disk(tokenized_dir)["test"]
    rows = test.select_columns(["input_ids", "label"]).to_list()
    training = json.loads((Path(model_dir) / "training.json").read_text())
    label_names = training["labels"]
    start = time.perf_counter()
    probabilities = predict_probabilities(model_dir, rows)
    elapsed = time.perf_counter() - start
    log.info("scored %d test texts in %.1fs (%.1f texts/s)", len(rows), elapsed, len(rows) / max(elapsed, 1e-9))

    result = compute_metrics([r["label"] for r in rows], probabilities, label_names)
    result["labels"] = label_names
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).write_text(json.dumps(result, indent=2))
    (out / REPORT_FILE).write_text(render_report(result, label_names, training, []))
    log.info("test accuracy %.4f, macro F1 %.4f", result["accuracy"], result["f1"])
    return result


@cpu_step
def evaluate_op(
    model: dsl.Input[dsl.Model],
    tokenized: dsl.Input[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    classification_metrics: dsl.Output[dsl.ClassificationMetrics],
    report: dsl.Output[dsl.Markdown],
    evaluation: dsl.Output[dsl.Artifact],
):
    """Evaluate the trained model on the test split.

    Args:
        model: The trained Model directory.
        tokenized: Tokenized splits; the test split is scored.
        metrics: Accuracy, macro F1, precision, recall, ROC AUC and loss.
        classification_metrics: Confusion matrix and (binary) ROC curve.
        report: Markdown report with the plots.
        evaluation: Directory with metrics.json (the gate's input and the next run's champion metrics).
    """
    import logging
    import shutil
    from pathlib import Path

    from components.evaluate import METRICS_FILE, REPORT_FILE, evaluate

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = evaluate(model.path, tokenized.path, evaluation.path)
    for name in ("accuracy", "f1", "precision", "recall", "roc_auc", "loss"):
        metrics.log_metric(name, result[name])
    classification_metrics.log_confusion_matrix(result["labels"], result["confusion_matrix"])
    if "roc_curve" in result:
        curve = result["roc_curve"]
        classification_metrics.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    shutil.copyfile(Path(evaluation.path) / REPORT_FILE, report.path)
    evaluation.metadata["metrics_file"] = METRICS_FILE
