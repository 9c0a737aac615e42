"""The tune step on Vertex AI: the search space as a HyperparameterTuningJob's ``StudySpec``, its
trials' worker pool, and the finished job's trials read back into the common report.

The job itself is google-cloud-pipeline-components' ``hyperparameter_tuning_job`` (compiled into the
Vertex YAML by ``pipelines/tune.py``); here is what it is given and what comes out of it. Each trial
is a CustomJob on one GPU running ``python -m textclf.tune.trial --engine vertex``; Vertex appends
the trial's values as ``--name=value`` and reads the metric the trial reports through
``cloudml-hypertune``. The search is Vertex's default (Vizier's Bayesian optimization). GCPC 2.22's
component does not expose Vertex's automated early stopping, so trials run to their end; resume is
Vertex's own (a retried launcher finds the job it started through its ``gcp_resources``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace

from textclf.platform.vertex import vertex_machine_type
from textclf.train.launch import settings_arguments
from textclf.train.settings import TrainSettings
from textclf.tune.settings import TuneSettings
from textclf.tune.space import SearchSpace
from textclf.tune.study import StudyResult, TrialRecord
from textclf.tune.trial import metric_name

TRIAL_STATES = {"SUCCEEDED": "COMPLETE", "STOPPING": "PRUNED", "INFEASIBLE": "FAIL", "FAILED": "FAIL"}


def _grid(p) -> list:
    """The values of a stepped range (Vertex has no stepped ranges: they become discrete values)."""
    values, value = [], p.low
    while value <= p.high + 1e-12:
        values.append(value)
        value = value + p.step
    return values


def parameter_spec(p):
    """One parameter as aiplatform's ``hyperparameter_tuning`` spec (what GCPC serializes)."""
    from google.cloud.aiplatform import hyperparameter_tuning as hpt

    scale = "log" if p.log else "linear"
    if p.kind == "categorical" and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p.choices):
        return hpt.DiscreteParameterSpec(values=sorted(float(v) for v in p.choices), scale="linear")
    if p.kind == "categorical":
        return hpt.CategoricalParameterSpec(values=[str(v) for v in p.choices])
    if p.step:
        return hpt.DiscreteParameterSpec(values=[float(v) for v in _grid(p)], scale="linear")
    if p.kind == "int":
        return hpt.IntegerParameterSpec(min=p.low, max=p.high, scale=scale)
    return hpt.DoubleParameterSpec(min=p.low, max=p.high, scale=scale)


def study_spec_parameters(space: SearchSpace) -> list[dict]:
    """``StudySpec.parameters`` for the search space, as GCPC's ``serialize_parameters`` writes them."""
    from google.cloud.aiplatform_v1.types import study

    return [
        study.StudySpec.ParameterSpec.to_dict(parameter_spec(p)._to_parameter_spec(parameter_id=p.name))
        for p in space.parameters
    ]


def study_spec_metrics(tune: TuneSettings) -> list[dict]:
    from google.cloud.aiplatform_v1.types import study

    goal = {
        "maximize": study.StudySpec.MetricSpec.GoalType.MAXIMIZE,
        "minimize": study.StudySpec.MetricSpec.GoalType.MINIMIZE,
    }
    return [
        study.StudySpec.MetricSpec.to_dict(
            study.StudySpec.MetricSpec(metric_id=metric_name(tune.tune_metric), goal=goal[tune.direction])
        )
    ]


def trial_worker_pool(
    tokenized_uri: str,
    metadata: dict,
    base: TrainSettings,
    tune: TuneSettings,
    space: SearchSpace,
    accelerator_type: str,
    image: str,
) -> list[dict]:
    """The trials' worker pool: one replica with one GPU, our trainer image, the trial entry point and
    the base settings (Vertex appends the tuned ones)."""
    arguments = settings_arguments(base, replace(tune, search_space=""))
    pairs = [
        (arguments[i], arguments[i + 1]) for i in range(0, len(arguments), 2) if arguments[i][2:] not in space.names
    ]
    args = [
        "--engine",
        "vertex",
        "--tokenized",
        tokenized_uri,
        "--metadata",
        json.dumps(metadata, sort_keys=True, default=str),
        *[arg for pair in pairs for arg in pair],
    ]
    return [
        {
            "machine_spec": {
                "machine_type": vertex_machine_type(accelerator_type, 1),
                "accelerator_type": accelerator_type,
                "accelerator_count": 1,
            },
            "replica_count": 1,
            "container_spec": {"image_uri": image, "command": ["python", "-m", "textclf.tune.trial"], "args": args},
        }
    ]


def job_name(gcp_resources: str) -> str:
    """The HyperparameterTuningJob's resource name from the launcher's ``gcp_resources`` output."""
    (resource,) = [
        r for r in json.loads(gcp_resources)["resources"] if r.get("resourceType") == "HyperparameterTuningJob"
    ]
    return resource["resourceUri"].split("/v1/", 1)[1]


def _value(trial, metric: str) -> float | None:
    for m in trial.final_measurement.metrics if trial.final_measurement else []:
        if m.metric_id == metric:
            return float(m.value)
    return None


def _typed(parameters, space: SearchSpace) -> dict:
    """Vertex's trial values (floats for discrete and integer parameters) as the settings' types."""
    kinds = {p.name: p for p in space.parameters}
    values = {}
    for parameter in parameters:
        p, value = kinds.get(parameter.parameter_id), parameter.value
        if p is None:
            continue
        if p.kind == "categorical" and isinstance(p.choices[0], (bool, str)):
            value = next(c for c in p.choices if str(c) == value)
        elif p.kind == "int" or (p.kind == "categorical" and isinstance(p.choices[0], int)):
            value = int(round(float(value)))
        values[p.name] = float(value) if p.kind == "float" else value
    return values


def trial_records(trials, space: SearchSpace, metric: str) -> list[TrialRecord]:
    records = []
    for number, trial in enumerate(sorted(trials, key=lambda t: int(t.id))):
        state = TRIAL_STATES.get(trial.state.name, "RUNNING")
        seconds = (trial.end_time - trial.start_time).total_seconds() if trial.end_time and trial.start_time else None
        records.append(
            TrialRecord(
                number,
                state,
                _typed(trial.parameters, space),
                _value(trial, metric),
                seconds,
                [],
                trial.infeasible_reason if state == "FAIL" else "",
                name=f"trial {trial.id}",
            )
        )
    return records


def study_result(job, space: SearchSpace, base: TrainSettings, tune: TuneSettings) -> StudyResult:
    """The finished job's trials and best trial (best by the metric's goal, as Vertex ranks them)."""
    metric = metric_name(tune.tune_metric)
    records = trial_records(job.trials, space, metric)
    scored = [(r.value, r) for r in records if r.state == "COMPLETE" and r.value is not None]
    if not scored:
        raise RuntimeError(f"HyperparameterTuningJob {job.resource_name}: no trial completed with {metric}")
    value, best = (max if tune.direction == "maximize" else min)(scored, key=lambda scored_trial: scored_trial[0])
    return StudyResult(
        job.display_name,
        f"Vertex AI {job.resource_name}",
        "vertex",
        tune.tune_metric,
        tune.direction,
        space.to_spec(),
        asdict(base),
        best.params,
        value,
        best.number,
        records,
    )


def tune_result(
    gcp_resources: str, base: TrainSettings, tune: TuneSettings, metadata: dict, out_dir: str, tracking_settings
) -> dict:
    """After the job: its trials into the same report, ``tuning.json`` and W&B run as a local study;
    returns the record the final training takes."""
    from google.cloud import aiplatform

    from textclf.tune.local import tracking_config
    from textclf.tune.report import publish
    from textclf.tune.space import trial_space

    name = job_name(gcp_resources)
    location = name.split("/")[3]
    job = aiplatform.HyperparameterTuningJob.get(name, location=location)
    result = study_result(job, trial_space(tune), base, tune)
    return publish(result, out_dir, tracking_settings, tracking_config(base, tune, metadata))
