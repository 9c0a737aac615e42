"""The tune step on one machine: the Optuna study, its report, and its W&B run."""

from __future__ import annotations

import dataclasses
import logging
import tempfile

from textclf.platform import storage
from textclf.train.settings import TrainSettings
from textclf.tune.report import publish
from textclf.tune.settings import TuneSettings
from textclf.tune.study import run_study

log = logging.getLogger(__name__)


def study_folder_for(output_path: str, output_uri: str, study_storage: str) -> str:
    """Where the study's journal goes: ``study_storage``, else beside the step's output where it outlives
    the task (its remote URI, such as ``gs://``, when it has one, as for training checkpoints), so a retried
    step resumes."""
    if study_storage:
        return study_storage
    return f"{output_uri if storage.is_shared(output_uri) else output_path}.study"


def tracking_config(base: TrainSettings, tune: TuneSettings, metadata: dict) -> dict:
    """The tune run's W&B config: the search, the settings trials start from, the data."""
    return {
        "tune": dataclasses.asdict(tune),
        "base_settings": dataclasses.asdict(base),
        "data_fingerprint": metadata.get("fingerprint"),
    }


def tune_locally(
    tokenized_dir: str,
    metadata: dict,
    base: TrainSettings,
    tune: TuneSettings,
    study_folder: str,
    out_dir: str,
    tracking_settings,
) -> dict:
    """Run (or resume) the study, write ``tuning.json`` and ``report.md`` to ``out_dir`` and track it on
    W&B (job type ``tune``); returns the record the final training takes (``apply_tuning``)."""
    with tempfile.TemporaryDirectory(prefix="tune-") as work_dir:
        result = run_study(tokenized_dir, metadata, base, tune, study_folder, work_dir)
    record = publish(result, out_dir, tracking_settings, tracking_config(base, tune, metadata))
    log.info(
        "best of %d trials: #%d, validation %s %.4f with %s",
        len(result.trials),
        result.best_trial,
        result.metric,
        result.best_value,
        result.best_params,
    )
    return record
