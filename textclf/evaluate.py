"""Evaluate step: the model on the held-out test split, scored once with the backend that will serve it.

Writes the numbers the gate decides on (``metrics.json``: the serving backend's test metrics and
its validation agreement with fp32 from the optimize step), every test text's prediction
(``predictions.parquet``), the confusion matrix and ROC curve for the KFP UI, and a Markdown report
a person reads before trusting the model.
"""

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from textclf.report import figure_markdown, markdown_table, new_figure
from textclf.settings import live_model_uri_setting, seed_setting, serving_backend_setting, setting

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
HEADLINE = ("accuracy", "f1", "f1_weighted", "precision", "recall", "roc_auc", "loss")
TOP_K = (3, 5)  # top-k accuracy for the k below the number of classes: top_3_accuracy, top_5_accuracy
CONFUSED_PAIRS = 10  # most-confused (true, predicted) pairs in metrics.json and the report
CELL_NUMBERS_MAX_CLASSES = 20  # the heatmap writes counts in its cells up to this many classes
PER_CLASS_IN_ID_ORDER = 10  # up to this many classes the per-class table keeps id order, then worst F1 first
ROC_POINTS = 101  # the KFP UI draws the curve from a list; a few hundred points are plenty
PREDICTIONS_FILE = "predictions.parquet"
TEST_BATCH_ROWS = 1024  # test texts read, encoded and scored at a time
CONFIDENT_MISTAKES = 10  # the report lists this many of the most confident wrong predictions
MEASURED_KEYS = ("texts", "label_flips", "flip_rate", "max_probability_change", "accuracy", "texts_per_second")
PROGRESS_SECONDS = 30.0  # at most one progress line this often while scoring (1M texts are ~1,000 batches)


@dataclass
class EvaluateSettings:
    """What the model is compared with and how the behavioural suites are drawn."""

    live_model_uri: str = live_model_uri_setting()
    seed: int = seed_setting()
    behaviour_suites: str = setting(
        "auto",
        "Behavioural suites besides the task-neutral ones built from the test texts "
        "(which every model gets): auto takes each shipped suite file whose labels fit the "
        "model's (the sentiment suites for negative/positive); or a suite file, a path or a "
        "URI such as gs://... (format: docs/behaviour.md); or none.",
    )
    serving_backend: str = serving_backend_setting()

    def __post_init__(self):
        from textclf.inference import AUTO, BACKENDS

        if self.serving_backend != AUTO and self.serving_backend not in BACKENDS:
            raise ValueError(
                f"serving_backend must be {AUTO} or one of {', '.join(BACKENDS)}, got {self.serving_backend!r}"
            )


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
    return {
        f"top_{k}_accuracy": float((ranked[:, :k] == labels[:, None]).any(axis=1).mean()) if len(labels) else math.nan
        for k in TOP_K
        if k < classes
    }


def per_class_metrics(labels, predicted, label_names: list[str]) -> dict:
    """``per_class`` (precision, recall, F1 and support by label name, in id order), and the lowest recall of a
    class with test texts (``min_class_recall``) with its label (``min_recall_class``)."""
    from sklearn import metrics as skm

    ids = list(range(len(label_names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(label_names)
    }
    present = [name for name in label_names if per_class[name]["support"]]
    lowest = min(present, key=lambda name: per_class[name]["recall"]) if present else None
    return {
        "per_class": per_class,
        "min_class_recall": per_class[lowest]["recall"] if lowest else math.nan,
        "min_recall_class": lowest,
    }


def confused_pairs(matrix, label_names: list[str], count: int = CONFUSED_PAIRS) -> list[dict]:
    """The ``count`` largest off-diagonal cells: true label, predicted label, texts, and their share of the
    true class."""
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
        pairs.append(
            {
                "true": label_names[true],
                "predicted": label_names[predicted],
                "count": int(off[true, predicted]),
                "share_of_true": float(off[true, predicted] / matrix[true].sum()),
            }
        )
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
            ax.text(
                j,
                i,
                int(count),
                ha="center",
                va="center",
                fontsize=9 if classes <= 8 else 7,
                color="white" if shares[i, j] > 0.5 else "black",
            )
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
    rows = [
        [
            name,
            f"{per_class[name]['precision']:.3f}",
            f"{per_class[name]['recall']:.3f}",
            f"{per_class[name]['f1']:.3f}",
            per_class[name]["support"],
        ]
        for name in names
    ]
    order = "worst F1 first" if len(names) > PER_CLASS_IN_ID_ORDER else "in label order"
    return f"{len(names)} classes, {order}.\n\n" + markdown_table(
        ["class", "precision", "recall", "F1", "support"], rows
    )


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
    rows += [
        [f"top-{k} accuracy", f"{result[f'top_{k}_accuracy']:.4f}"] for k in TOP_K if f"top_{k}_accuracy" in result
    ]
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
    return {
        name: result[name]
        for name in names
        if isinstance(result.get(name), (int, float)) and math.isfinite(result[name])
    }


class PredictionWriter:
    """``predictions.parquet``, written batch by batch (memory stays flat): per test text its ``row``
    (position in the tokenized test split), true ``label``, ``predicted`` label (ids; names in the
    file's ``labels`` metadata) and ``probabilities`` (float32, one per label)."""

    def __init__(self, path: str | Path, label_names: list[str]):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.schema = pa.schema(
            [
                ("row", pa.int64()),
                ("label", pa.int64()),
                ("predicted", pa.int64()),
                ("probabilities", pa.list_(pa.float32(), len(label_names))),
            ],
            metadata={"labels": json.dumps(label_names)},
        )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(str(path), self.schema)
        self.rows = 0

    def write(self, labels, probabilities) -> None:
        import numpy as np

        pa = self._pa
        count = len(labels)
        flat = pa.array(np.ascontiguousarray(probabilities, dtype=np.float32).reshape(-1))
        self._writer.write_table(
            pa.table(
                {
                    "row": pa.array(np.arange(self.rows, self.rows + count, dtype=np.int64)),
                    "label": pa.array(np.asarray(labels, dtype=np.int64)),
                    "predicted": pa.array(np.asarray(probabilities).argmax(axis=1).astype(np.int64)),
                    "probabilities": pa.FixedSizeListArray.from_arrays(flat, probabilities.shape[1]),
                },
                schema=self.schema,
            )
        )
        self.rows += count

    def close(self) -> None:
        self._writer.close()


class ConfidentMistakes:
    """The ``CONFIDENT_MISTAKES`` wrong predictions made with the highest probability, kept while streaming."""

    def __init__(self, size: int = CONFIDENT_MISTAKES):
        self.size, self.rows = size, 0
        self.heap: list[tuple[float, int, str, int, int]] = []  # (probability, row, text, true label, predicted)

    def add(self, texts: list[str], labels, probabilities) -> None:
        import heapq

        for offset, (text, label, row) in enumerate(zip(texts, labels, probabilities)):
            predicted = int(row.argmax())
            if predicted != label:
                entry = (float(row[predicted]), self.rows + offset, text[:300], int(label), predicted)
                (heapq.heappush if len(self.heap) < self.size else heapq.heappushpop)(self.heap, entry)
        self.rows += len(texts)

    def section(self, label_names: list[str]) -> str:
        if not self.heap:
            return "## Most confident mistakes\n\nNone: every test text got its true label."
        rows = [
            [row, label_names[label], label_names[predicted], f"{score:.3f}", " ".join(text.split())]
            for score, row, text, label, predicted in sorted(self.heap, reverse=True)
        ]
        return "\n\n".join(
            [
                "## Most confident mistakes",
                f"The {len(rows)} wrong predictions made with the highest probability (all of them are in "
                f"`{PREDICTIONS_FILE}`; `row` is the text's position in the test split).",
                markdown_table(["row", "true", "predicted", "probability", "text (start)"], rows),
            ]
        )


def model_engine(model_dir: str, backend: str):
    """(local directory, inference engine, ``training.json``) of a Model directory (local path or ``gs://``)."""
    from textclf.base_model import resolve_base_model
    from textclf.inference import InferenceSettings, load_engine

    local_dir = resolve_base_model(model_dir)
    training_file = Path(local_dir) / "training.json"
    training = json.loads(training_file.read_text()) if training_file.exists() else {}
    return local_dir, load_engine(local_dir, InferenceSettings(backend=backend)), training


def serving_record(local_dir: str, engine, requested: str, texts_per_second: float) -> dict:
    """What metrics.json says of the backend that scored: its name, why, the optimize step's validation
    agreement with fp32 (``validation``; None when that backend was never measured on this model) and
    what that step measured of every backend (``measured``)."""
    from textclf.inference import measurement, read_serving_file

    optimized = read_serving_file(local_dir) or {}
    measured = {
        name: {key: entry[key] for key in MEASURED_KEYS if key in entry} or entry
        for name, entry in optimized.get("backends", {}).items()
    }
    return {
        "backend": engine.name,
        "requested": requested,
        "reason": optimized.get("reason"),
        "validation": measurement(local_dir, engine.name),
        "measured_on": optimized.get("measured_on"),
        "measured": measured,
        "test_texts_per_second": texts_per_second,
    }


def serving_section(serving: dict) -> str:
    """The report's account of the serving backend: which, why, and what the optimize step measured."""
    rows = [
        [
            name,
            *(
                f"{entry[key]:.4g}" if isinstance(entry.get(key), float) else str(entry.get(key, ""))
                for key in MEASURED_KEYS
            ),
            entry.get("skipped") or entry.get("error") or "",
        ]
        for name, entry in serving.get("measured", {}).items()
    ]
    parts = [
        "## Serving backend",
        f"Scored with **{serving['backend']}** (asked for: {serving['requested']}), the backend that serves. "
        + (serving.get("reason") or "The optimize step never measured this model."),
    ]
    if rows:
        parts += [
            "What the optimize step measured against fp32 PyTorch on the validation split, on its CPU "
            f"({(serving.get('measured_on') or {}).get('cpu', 'unknown')}):",
            markdown_table(["backend", *MEASURED_KEYS, "left out"], rows),
        ]
    return "\n\n".join(parts)


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
    log.info(
        "behavioural suites: %s (%d skipped) in %.1fs",
        ", ".join(s.name for s in plan.suites),
        len(plan.skipped),
        time.perf_counter() - started,
    )
    return plan


def score_model(
    model_dir: str,
    test_batches: Callable[[], Iterable[tuple[list[str], list[int]]]],
    label_names: list[str],
    settings: EvaluateSettings,
    predictions_path: str | Path | None = None,
    backend: str | None = None,
    mistakes: ConfidentMistakes | None = None,
    suites=None,
) -> dict:
    """Metrics and behavioural suites of one model on the test split, scored through the inference engine.

    ``test_batches()`` yields (texts, labels) batches; each is encoded and scored before the next is
    read, and only the labels and probabilities are kept (K + 1 numbers a text). The backend is
    ``backend`` (default: ``settings.serving_backend``; ``auto``: the optimize step's choice), the one
    the model will serve with, and each model is scored through its own encoding, so a champion
    trained with other settings is judged as it serves. With ``predictions_path``, every text's
    prediction is written there (:class:`PredictionWriter`); ``mistakes`` collects the most confident
    wrong ones. ``suites`` is the behavioural ``SuitePlan`` (None: :func:`suite_plan`).
    """
    import numpy as np

    from textclf.behaviour import run_suites

    requested = backend or settings.serving_backend
    local_dir, engine, _ = model_engine(model_dir, requested)
    if engine.labels != list(label_names):
        raise ValueError(f"model {model_dir} has labels {engine.labels}, the data has {list(label_names)}")
    log.info("scoring %s with backend %s", model_dir, engine.name)
    writer = PredictionWriter(predictions_path, engine.labels) if predictions_path else None
    mistakes = mistakes or ConfidentMistakes()
    start = logged = time.perf_counter()
    labels, scored = [], []
    for texts, batch_labels in test_batches():
        batch = engine.probabilities(texts)
        scored.append(batch)
        labels.extend(batch_labels)
        mistakes.add(texts, batch_labels, batch)
        if writer is not None:
            writer.write(batch_labels, batch)
        if time.perf_counter() - logged >= PROGRESS_SECONDS:
            logged = time.perf_counter()
            log.info("scored %d test texts (%.1f texts/s)", len(labels), len(labels) / max(logged - start, 1e-9))
    if writer is not None:
        writer.close()
    probabilities = np.concatenate(scored) if scored else np.zeros((0, len(label_names)))
    elapsed = time.perf_counter() - start
    log.info(
        "scored %d texts with %s (%s) in %.1fs (%.1f texts/s)",
        len(labels),
        model_dir,
        engine.name,
        elapsed,
        len(labels) / max(elapsed, 1e-9),
    )
    result = compute_metrics(labels, probabilities, label_names)
    plan = suites or suite_plan(label_names, test_batches, settings)
    result["behaviour"] = run_suites(
        engine.probabilities,
        label_names,
        seed=settings.seed,
        suites=plan.suites,
        skipped=plan.skipped,
        notes=plan.notes,
    ).to_dict()
    result["serving"] = serving_record(local_dir, engine, requested, len(labels) / max(elapsed, 1e-9))
    result["model"] = model_dir
    return result


def held_out_batches(tokenized_dir: str, batch_rows: int = TEST_BATCH_ROWS):
    """A function that yields the tokenized test split's (texts, labels) in batches, read from disk each time."""
    from textclf.data.tokenized import iter_batches

    def batches():
        for batch in iter_batches(tokenized_dir, ["text", "label"], batch_rows, split="test"):
            yield batch.column("text").to_pylist(), batch.column("label").to_pylist()

    return batches


def evaluate(
    model_dir: str,
    tokenized_dir: str,
    output_dir: str,
    settings: EvaluateSettings | None = None,
    predictions_path: str | None = None,
) -> dict:
    """Evaluate the model (and the champion, when given) on the test split with the serving backend;
    write ``metrics.json``, ``report.md`` and the per-text predictions.

    Args:
        model_dir: the optimize step's Model directory (its ``serving.json`` says what ``auto`` serves).
        tokenized_dir: the tokenize step's output (its ``test`` split is read in batches).
        output_dir: where ``metrics.json`` and ``report.md`` are written.
        settings: ``serving_backend``, the backend scored (the one deploy pins); ``live_model_uri``, the
            Model directory (path or ``gs://``) of the model in production, scored with its own
            backend on the same test split and suites and stored under ``champion`` in
            ``metrics.json`` (empty: none); ``seed`` of the behavioural suites' generators.
        predictions_path: where the per-text predictions go (default ``output_dir/predictions.parquet``).

    Returns:
        The metrics (also in ``metrics.json``): the serving backend and its validation agreement,
        confusion matrix, ROC curve, behavioural suites, champion.
    """
    from textclf.behaviour import BehaviourReport
    from textclf.inference import AUTO

    settings = settings or EvaluateSettings()
    champion_model = settings.live_model_uri
    test_batches = held_out_batches(tokenized_dir)
    training = json.loads((Path(model_dir) / "training.json").read_text())
    label_names = training["labels"]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    mistakes = ConfidentMistakes()
    suites = suite_plan(label_names, test_batches, settings)  # the same cases for model and champion
    result = score_model(
        model_dir,
        test_batches,
        label_names,
        settings,
        predictions_path or out / PREDICTIONS_FILE,
        mistakes=mistakes,
        suites=suites,
    )
    result["labels"] = label_names
    sections = [
        serving_section(result["serving"]),
        mistakes.section(label_names),
        BehaviourReport.from_dict(result["behaviour"]).to_markdown(),
    ]
    if champion_model:
        try:  # the champion as it serves: the backend its own optimize step chose
            result["champion"] = score_model(
                champion_model, test_batches, label_names, settings, backend=AUTO, suites=suites
            )
        except Exception as error:  # noqa: BLE001 - reported, and the gate fails closed on it
            log.error("could not score the champion %s: %s", champion_model, error)
            result["champion_error"] = f"{type(error).__name__}: {error}"
        sections.append(champion_section(result))
    (out / METRICS_FILE).write_text(json.dumps(result, indent=2))
    (out / REPORT_FILE).write_text(render_report(result, label_names, training, sections))
    log.info(
        "test accuracy %.4f, macro F1 %.4f with %s", result["accuracy"], result["f1"], result["serving"]["backend"]
    )
    return result


def comparison_table(challenger: dict, champion: dict) -> str:
    """Challenger and champion side by side: headline metrics and behavioural pass rates, with differences."""
    from textclf.behaviour import BehaviourReport

    def rates(result: dict) -> dict:
        return (
            BehaviourReport.from_dict(result["behaviour"]).pass_rates()
            if isinstance(result.get("behaviour"), dict)
            else {}
        )

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
    return "\n\n".join(
        [
            "## Challenger vs champion (same test split, same suites)",
            f"Champion: `{result['champion']['model']}`",
            comparison_table(result, result["champion"]),
        ]
    )
