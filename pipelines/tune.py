"""The tune pipeline and ``python -m pipelines tune``: the training pipeline with a tune step between
tokenize and train, which trains the final model with the best settings it found.

    python -m pipelines tune --param source=sample:2000 --param n_trials=4

runs it locally (kfp's local runner), where the tune step is an Optuna study whose journal is kept
under ``runs/studies/`` unless ``--param study_storage=...`` says otherwise: the same command run
again after an interruption continues from the finished trials. ``compile --target kubeflow|vertex
--tune`` writes it for the cloud, where the tune step is a Katib Experiment (kubeflow) or a Vertex
AI HyperparameterTuningJob (vertex); both search the same space (the ``search_space`` parameter).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from components.tune import tune_katib_op, tune_op, tune_vertex_plan_op, tune_vertex_result_op
from textclf.images import TRAINER_IMAGE
from textclf.settings import pipeline_fields, to_lines
from textclf.train.settings import TrainSettings

STUDIES_DIR = "studies"  # under --runs-dir: the local Optuna journals

# The tune steps of each target (their parameters join the tune pipeline's).
TUNE_STEPS = {"local": (tune_op,), "kubeflow": (tune_katib_op,), "vertex": (tune_vertex_plan_op, tune_vertex_result_op)}


def train_settings_lines(params: dict) -> str:
    """The train step's parameters as ``name=value`` lines; each value is a pipeline channel, which
    kfp substitutes into the string at run time (the trials' base settings)."""
    return to_lines({name: params[name] for name in pipeline_fields(TrainSettings)})


def tune_step(target: str, call, params: dict, gpu_type: str, **data):
    """The target's tune step(s) after tokenize; returns the channel of the best settings (JSON)."""
    from pipelines.pipeline import TRAIN_HELPER_STEP, TRAIN_STEP, set_resources, use_wandb_secret

    if target == "local":
        task = call(tune_op, train_settings=train_settings_lines(params), **data)
        set_resources(task, TRAIN_STEP).set_display_name("tune")  # the trials train in this task
        return task.outputs["Output"]
    if target == "kubeflow":
        task = call(
            tune_katib_op,
            train_settings=train_settings_lines(params),
            gpu_type=gpu_type,
            trainer_image=TRAINER_IMAGE,
            **data,
        )
        set_resources(task, TRAIN_HELPER_STEP).set_display_name("tune-katib")  # it follows the Experiment
        use_wandb_secret(task)
        return task.outputs["Output"]
    if target == "vertex":
        return tune_on_vertex(call, params, gpu_type, **data)
    raise ValueError(f"no tune step for target {target!r}")


def tune_on_vertex(call, params: dict, gpu_type: str, **data):
    """Plan -> GCPC's HyperparameterTuningJob (in Vertex's region and project) -> read its trials."""
    from google_cloud_pipeline_components._placeholders import LOCATION_PLACEHOLDER
    from google_cloud_pipeline_components.v1.hyperparameter_tuning_job import HyperparameterTuningJobRunOp

    from pipelines.pipeline import GPU_TYPES, TRAIN_HELPER_STEP, set_resources

    lines = train_settings_lines(params)
    plan = call(
        tune_vertex_plan_op,
        train_settings=lines,
        accelerator_type=GPU_TYPES[gpu_type],
        trainer_image=TRAINER_IMAGE,
        **data,
    )
    set_resources(plan, TRAIN_HELPER_STEP).set_display_name("tune-plan")
    job = HyperparameterTuningJobRunOp(
        display_name="textclf-tune",
        base_output_directory=plan.outputs["base_output_directory"],
        worker_pool_specs=plan.outputs["worker_pool_specs"],
        study_spec_metrics=plan.outputs["study_spec_metrics"],
        study_spec_parameters=plan.outputs["study_spec_parameters"],
        max_trial_count=params["n_trials"],
        parallel_trial_count=plan.outputs["parallel_trial_count"],
        max_failed_trial_count=params["n_trials"],
        location=LOCATION_PLACEHOLDER,
        study_spec_algorithm="ALGORITHM_UNSPECIFIED",  # Vizier's Bayesian optimization
        study_spec_measurement_selection_type="LAST_MEASUREMENT",  # a trial reports its score last
    ).set_display_name("tune")
    result = call(
        tune_vertex_result_op, train_settings=lines, gcp_resources=job.outputs["gcp_resources"], dataset=data["dataset"]
    )
    set_resources(result, TRAIN_HELPER_STEP).set_display_name("tune-result")
    return result.outputs["Output"]


def tune_command(args: argparse.Namespace) -> None:
    """``tune``: the tune pipeline locally, then the same summary and exit status as ``run``."""
    from pipelines.run import run_command

    studies = str(Path(args.runs_dir, STUDIES_DIR).resolve())
    args.param = [f"study_storage={studies}", *args.param]  # an explicit --param study_storage=... comes later and wins
    run_command(args, tune=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    from pipelines.run import EXIT_GATE_BLOCKED, RUNS_DIR

    tune = subparsers.add_parser(
        "tune",
        help="tune the training settings, then train, evaluate and gate with the best (kfp local runner)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tune.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline argument (repeatable): n_trials, search_space, trial_train_fraction, ... and every "
        "parameter of run",
    )
    tune.add_argument("--runs-dir", default=RUNS_DIR, help="where runs (and studies/, the Optuna journals) are written")
    tune.add_argument(
        "--allow-blocked",
        action="store_true",
        help=f"exit 0 when the gate blocks the model (default: exit {EXIT_GATE_BLOCKED})",
    )
    tune.set_defaults(func=tune_command)
