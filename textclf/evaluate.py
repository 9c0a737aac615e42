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
HEADLINE = ("accuracy", "f1", "f1_weighted", "precision", "recall", "roc_auc", "loss")
TOP_K = (3, 5)  # top-k accuracy for the k below the number of classes: top_3_accuracy, top_5_accuracy
CONFUSED_PAIRS = 10  # most-confused (true, predicted) pairs in metrics.json and the report
CELL_NUMBERS_MAX_CLASSES = 20  # the heatmap writes counts in its cells up to this many classes
PER_CLASS_IN_ID_ORDER = 10  # up to this many classes the per-class table keeps id order, then worst F1 first
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
    behaviour_suites: str = setting("auto", "Behavioural suites besides the task-neutral ones built from the test texts "
                                    "(which every model gets): auto takes each shipped suite file whose labels fit the "
                                    "model's (the sentiment suites for negative/positive); or a suite file, path or "
                                    "gs:// URI (format: docs/behaviour.md); or none.")

    def __post_init__(self):
        if self.scoring_precision not in SCORING_PRECISIONS:
            raise ValueError(f"scoring_precision must be one of {SCORING_PRECISIONS}, got {self.scoring_precision!r}")


def compute_metrics(labels, probabilities, label_names: list[str]) -> dict:
    """Accuracy, macro and weighted F1, macro precision/recall, ROC AUC, loss, top-k accuracy, per-class
    precision/recall/F1/support, the lowest class recall, the most-confused pairs, the confusion matrix
    and (binary) ROC curve."""
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
        "f1_weighted": skm.f1_score(labels, predicted, average="weighted", labels=ids, zero_division=0),
        "precision": skm.precision_score(labels, predicted, average="macro", labels=ids, zero_division=0),
        "recall": skm.recall_score(labels, predicted, average="macro", labels=ids, zero_division=0),
        "loss": skm.log_loss(labels, np.clip(probabilities, 1e-12, 1), labels=ids),
        "roc_auc": math.nan,
        **top_k_accuracies(labels, probabilities),
        "examples": int(len(labels)),
    }
    if len(set(labels.tolist())) == len(label_names):  # AUC is undefined when a class is absent
        if len(label_names) == 2:
            result["roc_auc"] = skm.roc_auc_score(labels, probabilities[:, 1])
        else:
            result["roc_auc"] = skm.roc_auc_score(labels, probabilities, multi_class="ovr", labels=ids)
    result = {k: float(v) if k != "examples" else v for k, v in result.items()}
    matrix = skm.confusion_matrix(labels, predicted, labels=ids)
    result["confusion_matrix"] = matrix.tolist()
    result.update(per_class_metrics(labels, predicted, label_names))
    result["confused_pairs"] = confused_pairs(matrix, label_names)
    if len(label_names) == 2:
        result["roc_curve"] = roc_points(labels, probabilities[:, 1])
    return result


def top_k_accuracies(labels, probabilities) -> dict:
    """``top_K_accuracy`` for each k of ``TOP_K`` below the number of classes: the true label among the k likeliest."""
    import numpy as np

    classes = probabilities.shape[1]
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    return {f"top_{k}_accuracy": float((ranked[:, :k] == labels[:, None]).any(axis=1).mean()) if len(labels) else math.nan
            for k in TOP_K if k < classes}


def per_class_metrics(labels, predicted, label_names: list[str]) -> dict:
    """``per_class`` (precision, recall, F1 and support by label name, in id order), and the lowest recall of a
    class with test texts (``min_class_recall``) with its label (``min_recall_class``)."""
    from sklearn import metrics as skm

    ids = list(range(len(label_names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    per_class = {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                        "support": int(support[i])} for i, name in enumerate(label_names)}
    present = [name for name in label_names if per_class[name]["support"]]
    lowest = min(present, key=lambda name: per_class[name]["recall"]) if present else None
    return {"per_class": per_class, "min_class_recall": per_class[lowest]["recall"] if lowest else math.nan,
            "min_recall_class": lowest}


def confused_pairs(matrix, label_names: list[str], count: int = CONFUSED_PAIRS) -> list[dict]:
    """The ``count`` largest off-diagonal cells: true label, predicted label, texts, and their share of the true class."""
    import numpy as np

    matrix = np.asarray(matrix)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:count]
    pairs = []
    for flat in order:
        true, predicted = divmod(int(flat), len(label_names))
        if off[true, predicted] == 0:
            break
        pairs.append({"true": label_names[true], "predicted": label_names[predicted], "count": int(off[true, predicted]),
                      "share_of_true": float(off[true, predicted] / matrix[true].sum())})
    return pairs


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
    """The confusion matrix as a heatmap of each true class's shares (recall on the diagonal), so that small
    classes show as well as large ones; counts in the cells up to ``CELL_NUMBERS_MAX_CLASSES`` classes. The
    figure grows with the classes up to 14 inches (1,400 px), and the label font shrinks to fit 100 classes."""
    import numpy as np

    counts = np.asarray(matrix)
    classes = len(label_names)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(2.5 + 0.5 * classes, 14.0)
    fig, ax = new_figure(side + 1.5, side)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class's texts")
    if classes <= CELL_NUMBERS_MAX_CLASSES:
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, int(count), ha="center", va="center", fontsize=9 if classes <= 8 else 7,
                    color="white" if shares[i, j] > 0.5 else "black")
    font = max(4.0, min(10.0, 300.0 / classes))
    ax.set_xticks(range(classes), label_names, rotation=90 if classes > 8 else 30, fontsize=font)
    ax.set_yticks(range(classes), label_names, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (test split, {classes} classes)")
    return figure_markdown(fig, "confusion matrix")


def per_class_table(result: dict, label_names: list[str]) -> str:
    """Precision, recall, F1 and support per class: in id order for a few classes, worst F1 first for many."""
    per_class = result["per_class"]
    names = list(label_names)
    if len(names) > PER_CLASS_IN_ID_ORDER:
        names.sort(key=lambda name: (per_class[name]["f1"], name))
    rows = [[name, f"{per_class[name]['precision']:.3f}", f"{per_class[name]['recall']:.3f}",
             f"{per_class[name]['f1']:.3f}", per_class[name]["support"]] for name in names]
    order = "worst F1 first" if len(names) > PER_CLASS_IN_ID_ORDER else "in label order"
    return f"{len(names)} classes, {order}.\n\n" + markdown_table(["class", "precision", "recall", "F1", "support"], rows)


def confused_pairs_table(result: dict) -> str:
    pairs = result.get("confused_pairs") or []
    if not pairs:
        return "No test text was given a wrong class."
    rows = [[pair["true"], pair["predicted"], pair["count"], f"{pair['share_of_true']:.1%}"] for pair in pairs]
    return markdown_table(["true class", "predicted as", "texts", "share of the true class"], rows)


def roc_plot(curve: dict, auc: float) -> str:
    fig, ax = new_figure()
    ax.plot(curve["fpr"], curve["tpr"], label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve (test split)")
    ax.legend(loc="lower right")
    return figure_markdown(fig, "ROC curve")


def headline_rows(result: dict) -> list[list[str]]:
    """The report's metric table: the headline metrics, top-k accuracies, and the lowest class recall."""
    rows = [[name, f"{result[name]:.4f}"] for name in HEADLINE if name in result]
    rows += [[f"top-{k} accuracy", f"{result[f'top_{k}_accuracy']:.4f}"] for k in TOP_K if f"top_{k}_accuracy" in result]
    if result.get("min_recall_class") is not None:
        rows.append([f"lowest class recall ({result['min_recall_class']})", f"{result['min_class_recall']:.4f}"])
    return rows


def render_report(result: dict, label_names: list[str], training: dict, sections: list[str]) -> str:
    parts = [
        "# Evaluation report",
        f"Model trained from `{training.get('base_model')}` on data `{training.get('data_fingerprint')}`, "
        f"code `{training.get('code_version')}`; {result['examples']} test examples.",
        markdown_table(["metric", "value"], headline_rows(result)),
        "## Per-class metrics",
        per_class_table(result, label_names),
        "## Confusion matrix",
        confusion_plot(result["confusion_matrix"], label_names),
        "### Most-confused pairs",
        confused_pairs_table(result),
    ]
    if "roc_curve" in result:
        parts += ["## ROC curve", roc_plot(result["roc_curve"], result["roc_auc"])]
    return "\n\n".join(parts + sections) + "\n"


def scalar_metrics(result: dict) -> dict[str, float]:
    """The finite single-number metrics of a result, for the KFP Metrics artifact and W&B."""
    names = [*HEADLINE, *(f"top_{k}_accuracy" for k in TOP_K), "min_class_recall"]
    return {name: result[name] for name in names if isinstance(result.get(name), (int, float)) and math.isfinite(result[name])}


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


def test_texts(test_batches) -> Iterable[str]:
    """The test split's texts, streamed batch by batch."""
    for texts, _ in test_batches():
        yield from texts


def suite_plan(label_names: list[str], test_batches, settings: EvaluateSettings):
    """The behavioural suites for this model (``textclf.behaviour.plan``): task-neutral ones from the test
    texts, and the suite file's."""
    from textclf.behaviour import plan_suites

    started = time.perf_counter()
    plan = plan_suites(label_names, settings.behaviour_suites, test_texts(test_batches), settings.seed)
    log.info("behavioural suites: %s (%d skipped) in %.1fs", ", ".join(s.name for s in plan.suites), len(plan.skipped),
             time.perf_counter() - started)
    return plan


def score_model(model_dir: str, test_batches: Callable[[], Iterable[tuple[list[str], list[int]]]],
                label_names: list[str], settings: EvaluateSettings, probe_texts: list[str] | None = None,
                suites=None) -> dict:
    """Metrics and behavioural suites of one model on the test split.

    ``test_batches()`` yields (texts, labels) batches; each is encoded and scored before the next is
    read, and only the labels and probabilities are kept (K + 1 numbers a text). Each model is scored
    through its own encoding (tokenizer, max length and truncation as trained), so a champion trained
    with other settings is judged as it serves. The format is :func:`choose_precision`'s (recorded
    under ``scoring``), probed on ``probe_texts`` (None: the first ``PROBE_TEXTS`` test texts). ``suites``
    is the behavioural ``SuitePlan`` (None: :func:`suite_plan`).
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
    plan = suites or suite_plan(label_names, test_batches, settings)
    result["behaviour"] = run_suites(proba, label_names, seed=settings.seed, suites=plan.suites, skipped=plan.skipped,
                                     notes=plan.notes).to_dict()
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
    suites = suite_plan(label_names, test_batches, settings)  # the same cases for model and champion
    result = score_model(model_dir, test_batches, label_names, settings, probe_texts, suites)
    result["labels"] = label_names
    sections = [BehaviourReport.from_dict(result["behaviour"]).to_markdown()]
    if champion_model:
        try:
            result["champion"] = score_model(champion_model, test_batches, label_names, settings, probe_texts, suites)
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
