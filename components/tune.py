"""Tune steps: try settings on the tokenized splits and hand the best to the train step (``textclf.tune``).

* ``tune_op`` (local target): an Optuna study in the task itself, trials in sequence;
* ``tune_katib_op`` (kubeflow): a Katib Experiment whose trials are TrainJobs on the GPU pool;
* ``tune_vertex_plan_op`` / ``tune_vertex_result_op`` (vertex): around GCPC's HyperparameterTuningJob.

Each returns the same JSON record (the best settings under ``params``), which ``train_op`` takes as
``tuned_settings``. The trials' base settings are the train step's parameters, passed as one string
of ``name=value`` lines (``train_settings``, built by ``pipelines/tune.py``), so the 20-odd training
parameters are not named a fourth time here.
"""

from typing import NamedTuple

from kfp import dsl

from components.step import step
from components.train import GPU_TYPE_HELP, TRAINER_IMAGE_HELP
from textclf.images import TRAINER_IMAGE
from textclf.platform.trainjob import TrainJobSettings
from textclf.tracking import TrackingSettings
from textclf.tune.settings import CloudTuneSettings, KatibSettings, LocalTuneSettings, TuneSettings

TRAIN_SETTINGS_HELP = "The train step's parameters as name=value lines: the settings every trial starts from."


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@step(TuneSettings, LocalTuneSettings, TrackingSettings, wired={"train_settings": (TRAIN_SETTINGS_HELP, "")})
def tune_op(
    search_space: str,
    n_trials: int,
    tune_metric: str,
    trial_train_fraction: float,
    trial_max_steps: int,
    trial_reports_per_epoch: int,
    tune_pruning: bool,
    study_storage: str,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    train_settings: str,
    dataset: dsl.Input[dsl.Dataset],
    tokenized: dsl.Input[dsl.Dataset],
    tuning: dsl.Output[dsl.Artifact],
    report: dsl.Output[dsl.Markdown],
) -> str:
    """Tune the training settings with Optuna (TPE, median pruning) on the validation split; returns the
    best settings as JSON for the train step.

    Args:
        dataset: Ingested dataset (its metadata names the labels and the data fingerprint).
        tokenized: Tokenized splits; trials train on (a subsample of) train and are scored on validation.
        tuning: Directory with tuning.json (best settings, every trial) and report.md.
        report: Every trial's parameters, metric and duration, with plots.
    """
    import json
    import logging
    import shutil
    from pathlib import Path

    from textclf.settings import from_lines, from_values
    from textclf.tracking import TrackingSettings
    from textclf.train import TrainSettings
    from textclf.tune.local import study_folder_for, tune_locally
    from textclf.tune.report import REPORT_FILE
    from textclf.tune.settings import TuneSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    record = tune_locally(
        tokenized.path,
        {**dataset.metadata, **tokenized.metadata},
        from_lines(TrainSettings, train_settings),
        from_values(TuneSettings, locals()),
        study_folder_for(tuning.path, tuning.uri, study_storage),
        tuning.path,
        from_values(TrackingSettings, locals()),
    )
    shutil.copyfile(Path(tuning.path) / REPORT_FILE, report.path)
    tuning.metadata.update({k: record[k] for k in ("study", "metric", "best_value", "best_trial", "trials")})
    return json.dumps(record)


@step(
    TuneSettings,
    CloudTuneSettings,
    KatibSettings,
    TrainJobSettings,
    TrackingSettings,
    wired={
        "train_settings": (TRAIN_SETTINGS_HELP, ""),
        "gpu_type": (GPU_TYPE_HELP, ""),
        "trainer_image": (TRAINER_IMAGE_HELP, TRAINER_IMAGE),
    },
)
def tune_katib_op(
    search_space: str,
    n_trials: int,
    tune_metric: str,
    trial_train_fraction: float,
    trial_max_steps: int,
    trial_reports_per_epoch: int,
    tune_pruning: bool,
    parallel_trials: int,
    tune_timeout_hours: float,
    trainjob_runtime: str,
    trainjob_service_account: str,
    trainjob_timeout_hours: float,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    train_settings: str,
    gpu_type: str,
    trainer_image: str,
    dataset: dsl.Input[dsl.Dataset],
    tokenized: dsl.Input[dsl.Dataset],
    tuning: dsl.Output[dsl.Artifact],
    report: dsl.Output[dsl.Markdown],
) -> str:
    """Tune the training settings with a Katib Experiment (multivariate TPE, median stopping) whose
    trials are TrainJobs on the GPU pool; returns the best settings as JSON for the train step.

    Args:
        dataset: Ingested dataset (its metadata names the labels and the data fingerprint).
        tokenized: Tokenized splits, read by the trials from their gs:// URI.
        tuning: Directory with tuning.json (best settings, every trial) and report.md.
        report: Every trial's parameters, metric and duration, with plots.
    """
    import json
    import logging
    import shutil
    from pathlib import Path

    from kubeflow.trainer import TrainerClient

    from textclf.platform.trainjob import TrainJobSettings
    from textclf.settings import from_lines, from_values
    from textclf.tracking import TrackingSettings
    from textclf.train import TrainSettings
    from textclf.tune.katib import tune_with_katib
    from textclf.tune.report import REPORT_FILE
    from textclf.tune.settings import CloudTuneSettings, KatibSettings, TuneSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    record = tune_with_katib(
        TrainerClient(),
        tokenized.uri,
        {**dataset.metadata, **tokenized.metadata},
        from_lines(TrainSettings, train_settings),
        from_values(TuneSettings, locals()),
        from_values(CloudTuneSettings, locals()),
        from_values(KatibSettings, locals()),
        from_values(TrainJobSettings, locals()),
        gpu_type,
        trainer_image,
        tuning.path,
        from_values(TrackingSettings, locals()),
    )
    shutil.copyfile(Path(tuning.path) / REPORT_FILE, report.path)
    tuning.metadata.update({k: record[k] for k in ("study", "metric", "best_value", "best_trial", "trials")})
    return json.dumps(record)


class VERTEX_PLAN(NamedTuple):
    worker_pool_specs: list
    study_spec_parameters: list
    study_spec_metrics: list
    parallel_trial_count: int
    base_output_directory: str


@step(
    TuneSettings,
    CloudTuneSettings,
    wired={
        "train_settings": (TRAIN_SETTINGS_HELP, ""),
        "accelerator_type": ("Vertex AI accelerator of each trial.", ""),
        "trainer_image": (TRAINER_IMAGE_HELP, TRAINER_IMAGE),
    },
)
def tune_vertex_plan_op(
    search_space: str,
    n_trials: int,
    tune_metric: str,
    trial_train_fraction: float,
    trial_max_steps: int,
    trial_reports_per_epoch: int,
    tune_pruning: bool,
    parallel_trials: int,
    train_settings: str,
    accelerator_type: str,
    trainer_image: str,
    dataset: dsl.Input[dsl.Dataset],
    tokenized: dsl.Input[dsl.Dataset],
    trial_outputs: dsl.Output[dsl.Artifact],
) -> VERTEX_PLAN:
    """The Vertex AI tuning job's inputs: the search space as its StudySpec, the trials' worker pool
    (one GPU each, the trial entry point with the base settings) and where trials write.

    Args:
        dataset: Ingested dataset (its metadata names the labels and the data fingerprint).
        tokenized: Tokenized splits, read by the trials from their gs:// URI.
        trial_outputs: Base output directory of the tuning job's trials.
    """
    from collections import namedtuple

    from textclf.settings import from_lines, from_values
    from textclf.train import TrainSettings
    from textclf.tune.settings import CloudTuneSettings, TuneSettings
    from textclf.tune.space import trial_space
    from textclf.tune.vertex import study_spec_metrics, study_spec_parameters, trial_worker_pool

    tune, cloud = from_values(TuneSettings, locals()), from_values(CloudTuneSettings, locals())
    space = trial_space(tune)
    pools = trial_worker_pool(
        tokenized.uri,
        {**dataset.metadata, **tokenized.metadata},
        from_lines(TrainSettings, train_settings),
        tune,
        space,
        accelerator_type,
        trainer_image,
    )
    plan = namedtuple(
        "VertexTunePlan",
        [
            "worker_pool_specs",
            "study_spec_parameters",
            "study_spec_metrics",
            "parallel_trial_count",
            "base_output_directory",
        ],
    )
    return plan(
        pools,
        study_spec_parameters(space),
        study_spec_metrics(tune),
        min(cloud.parallel_trials, tune.n_trials),
        trial_outputs.uri,
    )


@step(
    TuneSettings,
    TrackingSettings,
    wired={
        "train_settings": (TRAIN_SETTINGS_HELP, ""),
        "gcp_resources": ("The tuning job, as its launcher names it.", ""),
    },
)
def tune_vertex_result_op(
    search_space: str,
    n_trials: int,
    tune_metric: str,
    trial_train_fraction: float,
    trial_max_steps: int,
    trial_reports_per_epoch: int,
    tune_pruning: bool,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    train_settings: str,
    gcp_resources: str,
    dataset: dsl.Input[dsl.Dataset],
    tuning: dsl.Output[dsl.Artifact],
    report: dsl.Output[dsl.Markdown],
) -> str:
    """Read the finished Vertex AI tuning job's trials; returns the best settings as JSON for the train step.

    Args:
        dataset: Ingested dataset (its metadata names the data fingerprint).
        tuning: Directory with tuning.json (best settings, every trial) and report.md.
        report: Every trial's parameters, metric and duration, with plots.
    """
    import json
    import logging
    import shutil
    from pathlib import Path

    from textclf.settings import from_lines, from_values
    from textclf.tracking import TrackingSettings
    from textclf.train import TrainSettings
    from textclf.tune.report import REPORT_FILE
    from textclf.tune.settings import TuneSettings
    from textclf.tune.vertex import tune_result

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    record = tune_result(
        gcp_resources,
        from_lines(TrainSettings, train_settings),
        from_values(TuneSettings, locals()),
        dataset.metadata,
        tuning.path,
        from_values(TrackingSettings, locals()),
    )
    shutil.copyfile(Path(tuning.path) / REPORT_FILE, report.path)
    tuning.metadata.update({k: record[k] for k in ("study", "metric", "best_value", "best_trial", "trials")})
    return json.dumps(record)
