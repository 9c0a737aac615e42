"""Evaluate step: the model (and the champion) on the test split and the behavioural suites (``textclf.evaluate``)."""

from kfp import dsl

from components.step import step
from textclf.evaluate import EvaluateSettings
from textclf.tracking import TrackingSettings


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@step(EvaluateSettings, TrackingSettings)
def evaluate_op(
    live_model_uri: str,
    seed: int,
    serving_backend: str,
    behaviour_suites: str,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    model: dsl.Input[dsl.Model],
    tokenized: dsl.Input[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    classification_metrics: dsl.Output[dsl.ClassificationMetrics],
    report: dsl.Output[dsl.Markdown],
    evaluation: dsl.Output[dsl.Artifact],
    predictions: dsl.Output[dsl.Dataset],
):
    """Evaluate the model on the test split with the backend that will serve it.

    Args:
        model: The optimize step's Model directory (what deploy serves).
        tokenized: Tokenized splits; the test split is scored.
        metrics: Accuracy, macro and weighted F1, precision, recall, ROC AUC, loss, top-k accuracy, the lowest
            class recall and behavioural pass rates, of the serving backend.
        classification_metrics: Confusion matrix and (binary) ROC curve.
        report: Markdown report with the plots and the most confident mistakes.
        evaluation: Directory with metrics.json (the gate's input and the next run's champion metrics).
        predictions: Parquet, one row per test text: row, label, predicted, probabilities.
    """
    import logging
    import shutil
    from pathlib import Path

    from textclf import tracking
    from textclf.behaviour import BehaviourReport
    from textclf.evaluate import METRICS_FILE, REPORT_FILE, EvaluateSettings, evaluate, scalar_metrics
    from textclf.settings import from_values

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = evaluate(
        model.path, tokenized.path, evaluation.path, from_values(EvaluateSettings, locals()), predictions.path
    )
    predictions.metadata.update(
        {"labels": result["labels"], "rows": result["examples"], "serving_backend": result["serving"]["backend"]}
    )
    scalars = scalar_metrics(result)
    for name, value in scalars.items():
        metrics.log_metric(name, value)
    validation = result["serving"]["validation"] or {}
    if isinstance(validation.get("flip_rate"), (int, float)):
        metrics.log_metric("serving_backend_validation_flip_rate", validation["flip_rate"])
    metrics.metadata["serving_backend"] = result["serving"]["backend"]
    for name, rate in BehaviourReport.from_dict(result["behaviour"]).pass_rates().items():
        metrics.log_metric(f"behaviour_{name}_pass_rate", rate)
    classification_metrics.log_confusion_matrix(result["labels"], result["confusion_matrix"])
    if "roc_curve" in result:
        curve = result["roc_curve"]
        classification_metrics.log_roc_curve(curve["fpr"], curve["tpr"], curve["thresholds"])
    shutil.copyfile(Path(evaluation.path) / REPORT_FILE, report.path)
    with tracking.start(
        from_values(tracking.TrackingSettings, locals()), job_type="evaluate", config={"model": model.uri}
    ) as run:
        run.log({f"test/{name}": value for name, value in scalars.items()})
        run.set_summary(scalars)
        run.log_confusion_matrix(result["labels"], result["confusion_matrix"])
        run.log_model(model.path, aliases=[tracking.CANDIDATE], metadata=tracking.model_metadata(scalars, model.uri))
    evaluation.metadata["metrics_file"] = METRICS_FILE
