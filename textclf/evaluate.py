"""Evaluate step: the trained model on the held-out test split.

Writes the numbers the gate decides on (``metrics.json``), the confusion matrix and ROC curve for
the KFP UI, and a Markdown report a person reads before trusting the model.
"""

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from textclf.report import figure_markdown, markdown_table, new_figure
from textclf.settings import live_model_uri_setting, seed_setting, setting

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
HEADLINE = ("accuracy", "f1", "precision", "recall", "roc_auc", "loss")
ROC_POINTS = 101  # the KFP UI draws the curve from a list; a few hundred points are plenty
TEST_BATCH_ROWS = 1024  # test texts read, encoded and scored at a time
SCORING_PRECISIONS = ("auto", "fp32", "bf16")
PROBE_TEXTS = 256  # test texts scored in both formats before bf16 is trusted (auto)
PROGRESS_SECONDS = 30.0  # at most one progress line this often while scoring (1M texts are ~1,000 batches)


@dataclass
class EvaluateSettings:
    """What the model is compared with and how the behavioural suites are drawn."""

    live_model_uri: str = live_model_uri_setting()
    seed: int = seed_setting()
    scoring_precision: str = setting(
        "auto", "Number format of the test scoring: auto scores in bf16 where the hardware has native bf16 "
        "and the first 256 test texts get probabilities within scoring_tolerance of fp32's (recorded in "
        "metrics.json; bf16 scores about 1.8x faster on an AVX512-BF16 CPU), else fp32; or fp32, or bf16.",
        choices=SCORING_PRECISIONS)
    scoring_tolerance: float = setting(0.02, "Largest probability change bf16 may make on the probe texts (auto).")

    def __post_init__(self):
        if self.scoring_precision not in SCORING_PRECISIONS:
            raise ValueError(f"scoring_precision must be one of {SCORING_PRECISIONS}, got {self.scoring_precision!r}")


def compute_metrics(labels, probabilities, label_names: list[str]) -> dict:
    """Accuracy, macro F1/precision/recall, ROC AUC, loss, confusion matrix and (binary) ROC curve."""
    import numpy as np
    from sklearn import metrics as skm

    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities /= probabilities.sum(axis=1, keepdims=True)  # float32 softmax sums drift from 1
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
    parts = [
        "# Evaluation report",
        f"Model trained from `{training.get('base_model')}` on data `{training.get('data_fingerprint')}`, "
        f"code `{training.get('code_version')}`; {result['examples']} test examples.",
        markdown_table(["metric", "value"], [[name, f"{result[name]:.4f}"] for name in HEADLINE]),
        "## Confusion matrix",
        confusion_plot(result["confusion_matrix"], label_names),
    ]
    if "roc_curve" in result:
        parts += ["## ROC curve", roc_plot(result["roc_curve"], result["roc_auc"])]
    return "\n\n".join(parts + sections) + "\n"


def load_model(model_dir: str):
    """Model, tokenizer and ``training.json`` of a Model directory (local path or ``gs://``)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.base_model import resolve_base_model

    model_dir = resolve_base_model(model_dir)
    training_file = Path(model_dir) / "training.json"
    training = json.loads(training_file.read_text()) if training_file.exists() else {}
    return model_dir, AutoModelForSequenceClassification.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir), training


def choose_precision(model, encoder, probe_texts: list[str], settings: EvaluateSettings) -> dict:
    """The scoring format and why: bf16 only where the hardware has it natively (``auto``) and the
    probe texts' probabilities stay within ``scoring_tolerance`` of fp32's."""
    import numpy as np

    from textclf.predict import predict_proba
    from textclf.train.precision import pick_precision

    if settings.scoring_precision != "auto":
        return {"precision": settings.scoring_precision, "reason": "asked for"}
    device = next(model.parameters()).device
    if pick_precision("auto", device.type) != "bf16" or not probe_texts:
        return {"precision": "fp32", "reason": "no native bf16 here"}
    fp32, bf16 = (predict_proba(model, encoder, 64, precision=p)(probe_texts) for p in ("fp32", "bf16"))
    change = float(np.abs(fp32 - bf16).max())
    kept = change <= settings.scoring_tolerance
    return {"precision": "bf16" if kept else "fp32", "probe_texts": len(probe_texts),
            "max_probability_change": change, "label_agreement": float((fp32.argmax(1) == bf16.argmax(1)).mean()),
            "reason": f"bf16 changed probabilities by at most {change:.4f} on the probe "
                      f"({'within' if kept else 'over'} the tolerance {settings.scoring_tolerance})"}


def first_texts(test_batches, count: int) -> list[str]:
    """The first ``count`` texts of the batches (fewer when there are fewer)."""
    texts: list[str] = []
    for batch, _ in test_batches():
        texts.extend(batch[: count - len(texts)])
        if len(texts) >= count:
            break
    return texts


def score_model(model_dir: str, test_batches: Callable[[], Iterable[tuple[list[str], list[int]]]],
                label_names: list[str], settings: EvaluateSettings, probe_texts: list[str] | None = None) -> dict:
    """Metrics and behavioural suites of one model on the test split.

    ``test_batches()`` yields (texts, labels) batches; each is encoded and scored before the next is
    read, and only the labels and probabilities are kept (K + 1 numbers a text). Each model is scored
    through its own encoding (tokenizer, max length and truncation as trained), so a champion trained
    with other settings is judged as it serves. The format is :func:`choose_precision`'s (recorded
    under ``scoring``), probed on ``probe_texts`` (None: the first ``PROBE_TEXTS`` test texts).
    """
    import numpy as np

    from textclf.behaviour import run_suites
    from textclf.encoding import TextEncoder
    from textclf.predict import predict_proba

    local_dir, model, tokenizer, training = load_model(model_dir)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if names != list(label_names):
        raise ValueError(f"model {model_dir} has labels {names}, the data has {list(label_names)}")
    encoder = TextEncoder.for_model(local_dir, tokenizer)
    if probe_texts is None:
        probe_texts = first_texts(test_batches, PROBE_TEXTS)
    scoring = choose_precision(model, encoder, probe_texts, settings)
    log.info("scoring %s in %s: %s", model_dir, scoring["precision"], scoring["reason"])
    proba = predict_proba(model, encoder, batch_size=64, precision=scoring["precision"])
    start = logged = time.perf_counter()
    labels, probabilities = [], []
    for texts, batch_labels in test_batches():
        probabilities.append(proba(texts))
        labels.extend(batch_labels)
        if time.perf_counter() - logged >= PROGRESS_SECONDS:
            logged = time.perf_counter()
            log.info("scored %d test texts (%.1f texts/s)", len(labels), len(labels) / max(logged - start, 1e-9))
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, len(label_names)))
    elapsed = time.perf_counter() - start
    log.info("scored %d texts with %s in %.1fs (%.1f texts/s)", len(labels), model_dir, elapsed, len(labels) / max(elapsed, 1e-9))
    result = compute_metrics(labels, probabilities, label_names)
    result["behaviour"] = run_suites(proba, label_names, seed=settings.seed).to_dict()
    result["scoring"] = scoring
    result["model"] = model_dir
    return result


def held_out_batches(tokenized_dir: str, batch_rows: int = TEST_BATCH_ROWS):
    """A function that yields the tokenized test split's (texts, labels) in batches, read from disk each time."""
    from textclf.data.tokenized import iter_batches

    def batches():
        for batch in iter_batches(tokenized_dir, ["text", "label"], batch_rows, split="test"):
            yield batch.column("text").to_pylist(), batch.column("label").to_pylist()

    return batches


def evaluate(model_dir: str, tokenized_dir: str, output_dir: str, settings: EvaluateSettings | None = None) -> dict:
    """Evaluate the model (and the champion, when given) on the test split; write ``metrics.json`` and ``report.md``.

    Args:
        model_dir: the train step's Model directory.
        tokenized_dir: the tokenize step's output (its ``test`` split is read in batches).
        output_dir: where ``metrics.json`` and ``report.md`` are written.
        settings: ``live_model_uri``, the Model directory (path or ``gs://``) of the model in production,
            scored on the same test split and suites and stored under ``champion`` in ``metrics.json``
            (empty: none); ``seed`` of the behavioural suites' generators.

    Returns:
        The metrics (also in ``metrics.json``): confusion matrix, ROC curve, behavioural suites, champion.
    """
    from textclf.behaviour import BehaviourReport

    settings = settings or EvaluateSettings()
    champion_model = settings.live_model_uri
    test_batches = held_out_batches(tokenized_dir)
    training = json.loads((Path(model_dir) / "training.json").read_text())
    label_names = training["labels"]
    probe_texts = first_texts(test_batches, PROBE_TEXTS)  # one read, whichever models are scored
    result = score_model(model_dir, test_batches, label_names, settings, probe_texts)
    result["labels"] = label_names
    sections = [BehaviourReport.from_dict(result["behaviour"]).to_markdown()]
    if champion_model:
        try:
            result["champion"] = score_model(champion_model, test_batches, label_names, settings, probe_texts)
        except Exception as error:  # noqa: BLE001 - reported, and the gate fails closed on it
            log.error("could not score the champion %s: %s", champion_model, error)
            result["champion_error"] = f"{type(error).__name__}: {error}"
        sections.append(champion_section(result))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).write_text(json.dumps(result, indent=2))
    (out / REPORT_FILE).write_text(render_report(result, label_names, training, sections))
    log.info("test accuracy %.4f, macro F1 %.4f", result["accuracy"], result["f1"])
    return result


def comparison_table(challenger: dict, champion: dict) -> str:
    """Challenger and champion side by side: headline metrics and behavioural pass rates, with differences."""
    from textclf.behaviour import BehaviourReport

    def rates(result: dict) -> dict:
        return BehaviourReport.from_dict(result["behaviour"]).pass_rates() if isinstance(result.get("behaviour"), dict) else {}

    def cell(value, digits: int) -> str:
        return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "n/a"

    def row(name: str, new, old, digits: int) -> list[str]:
        both = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (new, old))
        return [name, cell(new, digits), cell(old, digits), f"{new - old:+.{digits}f}" if both else "n/a"]

    rows = [row(name, challenger.get(name), champion.get(name), 4) for name in HEADLINE]
    new_rates, old_rates = rates(challenger), rates(champion)
    rows += [row(f"behaviour {key}", new_rates[key], old_rates.get(key), 3) for key in new_rates]
    return markdown_table(["metric", "challenger", "champion", "difference"], rows)


def champion_section(result: dict) -> str:
    if "champion" not in result:
        return f"## Champion\n\nThe champion could not be scored: {result['champion_error']}"
    return "\n\n".join([
        "## Challenger vs champion (same test split, same suites)",
        f"Champion: `{result['champion']['model']}`",
        comparison_table(result, result["champion"]),
    ])
