"""The tune step on Kubeflow: a Katib v0.19 Experiment whose trials are Kubeflow Trainer TrainJobs.

Why not ``kubeflow.optimizer.OptimizerClient`` (the ``kubeflow`` SDK 0.5.0 this project pins): its
``optimize`` offers only random and grid search, no early stopping, no integer parameters, and a
TrainJob template without pod settings (no GPU pool selector or toleration, no service account, no
secret reference). The Experiment is therefore built here from the same pieces that SDK uses: the
Katib API models of ``kubeflow-katib-api`` 0.19.0 (Katib v0.19.0's types), the TrainJob spec made
by the SDK's Trainer backend from the same :class:`~textclf.platform.trainjob.TrainJobRequest` as the
multi-node train step (GPU pool, service account, the ``wandb`` secret by reference), and created
with the Kubernetes client as the SDK creates it. ``kubeflow-katib`` (the older SDK) is not used:
it pins a ``kubernetes`` client older than the one Trainer's SDK needs.

The Experiment searches with ``multivariate-tpe`` (Katib's Optuna suggestion service: the algorithm
the local study uses), stops trials with ``medianstop`` and collects ``validation_accuracy`` /
``validation_loss`` from each trial's stdout (``textclf.tune.trial``). Its name is the study's
digest (``textclf.tune.study.study_name``): a retried step finds the Experiment it created and
follows it instead of starting over (Katib keeps the finished trials).
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, replace

from textclf.platform import storage
from textclf.platform.trainjob import TrainJobRequest, TrainJobSettings
from textclf.train.launch import settings_arguments
from textclf.train.settings import TrainSettings
from textclf.tune.settings import CloudTuneSettings, KatibSettings, TuneSettings
from textclf.tune.space import SearchSpace
from textclf.tune.study import PRUNER_STARTUP_TRIALS, StudyResult, TrialRecord, pruner_warmup_points, study_name
from textclf.tune.trial import KATIB_METRICS, metric_name

log = logging.getLogger(__name__)

GROUP, VERSION = "kubeflow.org", "v1beta1"
ALGORITHM = "multivariate-tpe"
EARLY_STOPPING = "medianstop"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
# Katib's defaults for TrainJob trials (pkg/apis/controller/experiments/v1beta1/constants.go), set
# explicitly so that the Experiment does not depend on the mutating webhook.
TRAINJOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
TRAINJOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
TRAINJOB_PRIMARY_POD = {
    "jobset.sigs.k8s.io/replicatedjob-name": "node",
    "batch.kubernetes.io/job-completion-index": "0",
}
PARAMETER_TYPES = {"float": "double", "int": "int", "categorical": "categorical"}


class ExperimentFailed(RuntimeError):
    """The Katib Experiment failed, or did not finish in time."""


def katib_parameters(space: SearchSpace) -> list[dict]:
    """``spec.parameters``: the search space in Katib's terms (every bound and choice a string)."""
    parameters = []
    for p in space.parameters:
        feasible: dict[str, str | list[str]]
        if p.kind == "categorical":
            feasible = {"list": [str(value) for value in p.choices]}
        else:
            feasible = {"min": str(p.low), "max": str(p.high), "distribution": "logUniform" if p.log else "uniform"}
            feasible.update({"step": str(p.step)} if p.step else {})
        parameters.append({"name": p.name, "parameterType": PARAMETER_TYPES[p.kind], "feasibleSpace": feasible})
    return parameters


def trial_command(
    tokenized_uri: str, metadata: dict, base: TrainSettings, tune: TuneSettings, space: SearchSpace
) -> list[str]:
    """``python -m textclf.tune.trial`` with the base settings, each tuned one as Katib's placeholder."""
    placeholders = {name: f"${{trialParameters.{name}}}" for name in space.names}
    arguments = settings_arguments(base, replace(tune, search_space=""))  # the trial needs its values, not the space
    for i in range(0, len(arguments), 2):
        arguments[i + 1] = placeholders.get(arguments[i][2:], arguments[i + 1])
    return [
        "python",
        "-m",
        "textclf.tune.trial",
        "--engine",
        "katib",
        "--tokenized",
        tokenized_uri,
        "--metadata",
        json.dumps(metadata, sort_keys=True, default=str),
        *arguments,
    ]


def trial_request(command: list[str], job: TrainJobSettings, gpu_type: str, image: str) -> TrainJobRequest:
    """One trial: a one-node TrainJob on one GPU of the pool, with the multi-node train step's pod
    settings (runtime, service account, the W&B secret by reference, trainjob_timeout_hours)."""
    return TrainJobRequest(
        name="",
        image=image,
        command=command,
        num_nodes=1,
        gpus_per_node=1,
        gpu_type=gpu_type,
        service_account=job.trainjob_service_account,
        runtime=job.trainjob_runtime,
        timeout_seconds=max(1, round(job.trainjob_timeout_hours * 3600)),
    )


def trainjob_spec(trainer_client, request: TrainJobRequest) -> dict:
    """The TrainJob spec the Trainer SDK would send for ``request`` (its runtime is read from the
    cluster), without sending it: Katib creates one per trial from this template."""
    job_spec: dict = {}
    trainer = request.trainer()
    for option in request.options():
        option(job_spec, trainer, trainer_client.backend)
    spec = job_spec.get("spec", {})
    return trainer_client.backend._get_trainjob_spec(  # the private call OptimizerClient itself makes
        runtime=request.runtime,
        trainer=trainer,
        trainer_overrides=spec.get("trainer", {}),
        runtime_patches=spec.get("runtimePatches"),
        active_deadline_seconds=spec.get("activeDeadlineSeconds"),
    ).to_dict()


def experiment_body(
    name: str, space: SearchSpace, tune: TuneSettings, cloud: CloudTuneSettings, trial_spec: dict
) -> dict:
    """The Experiment, checked by Katib's own API models (``kubeflow-katib-api``, Katib v0.19.0)."""
    from kubeflow_katib_api import models

    objective = metric_name(tune.tune_metric)
    spec = {
        # The trial's last line is its score (textclf.tune.trial): "latest" makes it Katib's too.
        "objective": {
            "type": tune.direction,
            "objectiveMetricName": objective,
            "additionalMetricNames": [m for m in KATIB_METRICS if m != objective],
            "metricStrategies": [{"name": objective, "value": "latest"}],
        },
        "algorithm": {"algorithmName": ALGORITHM},
        "parameters": katib_parameters(space),
        "maxTrialCount": tune.n_trials,
        "parallelTrialCount": min(cloud.parallel_trials, tune.n_trials),
        "maxFailedTrialCount": tune.n_trials,  # a diverging trial is a result, not a reason to stop the search
        "trialTemplate": {
            "retain": True,  # keep finished TrainJobs (and their logs) for inspection: they hold no GPU
            "primaryContainerName": "node",
            "primaryPodLabels": TRAINJOB_PRIMARY_POD,
            "successCondition": TRAINJOB_SUCCESS,
            "failureCondition": TRAINJOB_FAILURE,
            "trialParameters": [{"name": n, "reference": n, "description": f"TrainSettings.{n}"} for n in space.names],
            "trialSpec": {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "spec": trial_spec},
        },
    }
    if tune.tune_pruning:
        spec["earlyStopping"] = {
            "algorithmName": EARLY_STOPPING,
            "algorithmSettings": [
                {"name": "min_trials_required", "value": str(PRUNER_STARTUP_TRIALS)},
                {"name": "start_step", "value": str(pruner_warmup_points(tune))},
            ],
        }
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "textclf"}},
        "spec": spec,
    }
    return models.V1beta1Experiment.from_dict(body).to_dict()


def create_or_attach(api, namespace: str, body: dict) -> dict:
    """Create the Experiment, or return the one of the same name (a retried step, or a rerun of the
    same study): Katib then goes on from the trials it has."""
    from kubernetes.client.exceptions import ApiException

    name = body["metadata"]["name"]
    try:
        return api.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", body)
    except ApiException as error:
        if error.status != 409:
            raise ExperimentFailed(
                f"Katib refused Experiment {name}: {error.status} {error.reason}: {error.body}"
            ) from None
    log.info("Experiment %s exists (a retried step or the same study): following it", name)
    return api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)


def condition(experiment: dict) -> str:
    """The Experiment's latest true condition type (Created, Running, Succeeded, Failed...), or ''."""
    conditions = [c for c in experiment.get("status", {}).get("conditions", []) if c.get("status") == "True"]
    return conditions[-1]["type"] if conditions else ""


def follow(
    api,
    namespace: str,
    name: str,
    timeout_seconds: float,
    poll_seconds: float = 30,
    echo: Callable[[str], None] = log.info,
) -> dict:
    """Wait for the Experiment to succeed, logging its trial counts when they change.

    Raises:
        ExperimentFailed: it failed, or did not finish within ``timeout_seconds``.
    """
    deadline, seen = time.monotonic() + timeout_seconds, None
    while True:
        experiment = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
        status = experiment.get("status", {})
        counts = tuple(
            status.get(k, 0)
            for k in ("trials", "trialsSucceeded", "trialsRunning", "trialsEarlyStopped", "trialsFailed")
        )
        if counts != seen:
            trials, succeeded, running, stopped, failed = counts
            echo(
                f"Experiment {name}: {trials} trials, {succeeded} succeeded, {running} running, "
                f"{stopped} early-stopped, {failed} failed"
            )
            seen = counts
        state = condition(experiment)
        if state == "Succeeded":
            return experiment
        if state == "Failed":
            messages = "; ".join(
                c.get("message", "") for c in status.get("conditions", []) if c.get("type") == "Failed"
            )
            raise ExperimentFailed(f"Experiment {name} failed: {messages}")
        if time.monotonic() > deadline:
            raise ExperimentTimeout(f"Experiment {name} did not finish within {timeout_seconds:.0f}s")
        time.sleep(poll_seconds)


def _typed_params(assignments: list[dict], space: SearchSpace) -> dict:
    """Katib's string assignments as the settings' types."""
    import dataclasses

    from textclf.settings import typed_value

    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    return {a["name"]: typed_value(fields[a["name"]], a["value"]) for a in assignments if a["name"] in space.names}


def _observed(observation: dict, metric: str) -> float | None:
    """The metric's latest value: the trial's score, which it reports last."""
    for m in observation.get("metrics", []) or []:
        if m.get("name") == metric and m.get("latest") not in (None, "unavailable"):
            return float(m["latest"])
    return None


def _seconds(trial: dict) -> float | None:
    from datetime import datetime

    status = trial.get("status", {})
    if not status.get("startTime") or not status.get("completionTime"):
        return None
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return (parse(status["completionTime"]) - parse(status["startTime"])).total_seconds()


TRIAL_STATES = {"Succeeded": "COMPLETE", "EarlyStopped": "PRUNED", "Failed": "FAIL", "MetricsUnavailable": "FAIL"}


def trial_records(trials: list[dict], space: SearchSpace, metric: str) -> list[TrialRecord]:
    """Katib's Trials in the order they were made, as the report shows them."""
    records = []
    for number, trial in enumerate(sorted(trials, key=lambda t: t["metadata"].get("creationTimestamp", ""))):
        state = TRIAL_STATES.get(condition(trial), "RUNNING")
        observation = trial.get("status", {}).get("observation", {})
        records.append(
            TrialRecord(
                number,
                state,
                _typed_params(trial["spec"].get("parameterAssignments", []), space),
                _observed(observation, metric) if state == "COMPLETE" else None,
                _seconds(trial),
                [],
                name=trial["metadata"]["name"],
            )
        )
    return records


def study_result(
    experiment: dict, trials: list[dict], space: SearchSpace, base: TrainSettings, tune: TuneSettings, where: str
) -> StudyResult:
    """The Experiment's outcome as the report and the train step take it."""
    optimal = experiment.get("status", {}).get("currentOptimalTrial", {})
    if not optimal.get("bestTrialName"):
        raise ExperimentFailed(f"Experiment {experiment['metadata']['name']} has no best trial: no trial completed")
    metric = metric_name(tune.tune_metric)
    records = trial_records(trials, space, metric)
    best = next(r for r in records if r.name == optimal["bestTrialName"])
    value = _observed(optimal.get("observation", {}), metric)
    if value is None:
        raise ExperimentFailed(
            f"Experiment {experiment['metadata']['name']}: its best trial {best.name} has no {metric}"
        )
    return StudyResult(
        experiment["metadata"]["name"],
        where,
        "katib",
        tune.tune_metric,
        tune.direction,
        space.to_spec(),
        asdict(base),
        _typed_params(optimal.get("parameterAssignments", []), space),
        value,
        best.number,
        records,
    )


class ExperimentTimeout(ExperimentFailed):
    """The Experiment did not finish in time (it may still be running)."""


def _raise_on_sigterm(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def run_katib(
    trainer_client,
    tokenized_uri: str,
    metadata: dict,
    base: TrainSettings,
    tune: TuneSettings,
    cloud: CloudTuneSettings,
    wait: KatibSettings,
    job: TrainJobSettings,
    gpu_type: str,
    image: str,
    poll_seconds: float = 30,
) -> StudyResult:
    """Create (or find) the Experiment, wait for it, and read its trials.

    ``trainer_client`` is the Trainer SDK's ``TrainerClient``: its Kubernetes connection and namespace
    serve the Katib calls too. A step that is stopped (SIGTERM) or gives up waiting deletes the
    Experiment, so that no GPU node keeps training for nobody; a failed one stays for ``kubectl describe``.
    """
    from textclf.tune.space import trial_space

    if not storage.is_shared(tokenized_uri):
        raise ValueError(
            f"Katib's trials run in their own pods and read the tokenized splits from object storage, but "
            f"they are at {tokenized_uri!r}: submit the run with a pipeline root on object storage "
            "(gs://, s3://)"
        )
    space = trial_space(tune)
    name = study_name(space, base, tune, metadata)
    request = trial_request(trial_command(tokenized_uri, metadata, base, tune, space), job, gpu_type, image)
    body = experiment_body(name, space, tune, cloud, trainjob_spec(trainer_client, request))
    api, namespace = trainer_client.backend.custom_api, trainer_client.backend.namespace
    create_or_attach(api, namespace, body)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        experiment = follow(api, namespace, name, wait.tune_timeout_hours * 3600, poll_seconds)
    except (ExperimentTimeout, SystemExit, KeyboardInterrupt) as error:
        log.warning("deleting Experiment %s: %s", name, error)
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    trials = api.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "trials", label_selector=f"{EXPERIMENT_LABEL}={name}"
    )["items"]
    return study_result(experiment, trials, space, base, tune, f"Katib Experiment {namespace}/{name}")


def tune_with_katib(
    trainer_client,
    tokenized_uri: str,
    metadata: dict,
    base: TrainSettings,
    tune: TuneSettings,
    cloud: CloudTuneSettings,
    wait: KatibSettings,
    job: TrainJobSettings,
    gpu_type: str,
    image: str,
    out_dir: str,
    tracking_settings,
    poll_seconds: float = 30,
) -> dict:
    """The Kubeflow tune step: the Experiment (:func:`run_katib`), then the same report, ``tuning.json``
    and W&B run as a local study; returns the record the final training takes."""
    from textclf.tune.local import tracking_config
    from textclf.tune.report import publish

    result = run_katib(
        trainer_client, tokenized_uri, metadata, base, tune, cloud, wait, job, gpu_type, image, poll_seconds
    )
    log.info(
        "best of %d trials: %s, validation %s %.4f with %s",
        len(result.trials),
        result.trials[result.best_trial].name,
        result.metric,
        result.best_value,
        result.best_params,
    )
    return publish(result, out_dir, tracking_settings, tracking_config(base, tune, metadata))
