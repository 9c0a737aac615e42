"""The tune pipeline on Vertex AI: the HyperparameterTuningJob in the compiled YAML and its search space.

No Vertex AI here: the compiled YAML is read as Vertex would run it. The plan step's own function
runs with the inputs the YAML gives it; the tuning job's payload is then assembled from the YAML's
own template and parsed into Vertex AI's ``HyperparameterTuningJob`` message (what GCPC's launcher
sends); the search space is compared with what GCPC's ``serialize_parameters`` (a peer nobody here
wrote) makes of the same space. The result step reads the finished job through aiplatform, whose
JobService client is patched at the transport boundary (as tests/cloud/fake_vertex.py does).
"""

import datetime
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.cloud.compiled import task_inputs

METADATA = {"labels": ["negative", "positive"], "fingerprint": "f00d", "max_length": 128, "truncation": "head"}
IMAGE = "europe-docker.pkg.dev/p/textclf/textclf-trainer:abc123"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from pipelines.compile import compile_pipeline

    path = compile_pipeline("vertex", str(tmp_path_factory.mktemp("yaml") / "tune-vertex.yaml"), tune=True)
    (spec,) = list(yaml.safe_load_all(Path(path).read_text()))  # one document: Vertex takes no kubernetes platform spec
    return spec


def artifacts(tmp_path):
    from kfp import dsl

    return {
        "dataset": dsl.Dataset(name="dataset", uri="gs://bucket/root/run/ingest-op/dataset", metadata=METADATA),
        "tokenized": dsl.Dataset(name="tokenized", uri="gs://bucket/root/run/tokenize-op/tokenized", metadata={}),
        "trial_outputs": dsl.Artifact(
            name="trial_outputs", uri="gs://bucket/root/run/tune-vertex-plan-op/trial_outputs"
        ),
    }


@pytest.fixture(scope="module")
def plan(compiled, tmp_path_factory):
    from components.tune import tune_vertex_plan_op

    inputs = task_inputs(compiled, "tune-vertex-plan-op")
    assert inputs["accelerator_type"] == "NVIDIA_L4"
    inputs["trainer_image"] = IMAGE
    return tune_vertex_plan_op.python_func(**inputs, **artifacts(tmp_path_factory.mktemp("plan")))


def payload(compiled, plan) -> dict:
    """The tuning job's payload as GCPC's launcher gets it: the YAML's template with the task's values."""
    task = compiled["root"]["dag"]["tasks"]["hyperparameter-tuning-job"]
    component = compiled["components"][task["componentRef"]["name"]]
    container = compiled["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    assert (
        container["command"][-1] == "google_cloud_pipeline_components.container.v1.hyperparameter_tuning_job.launcher"
    )
    template = json.loads(container["args"][container["args"].index("--payload") + 1])["Concat"]
    defaults = {name: d.get("defaultValue", "") for name, d in component["inputDefinitions"]["parameters"].items()}
    values = {**defaults, **task_inputs(compiled, "hyperparameter-tuning-job")}
    for name, source in task["inputs"]["parameters"].items():
        if "taskOutputParameter" in source:
            assert source["taskOutputParameter"]["producerTask"] == "tune-vertex-plan-op"
            values[name] = getattr(plan, source["taskOutputParameter"]["outputParameterKey"])
    placeholder = re.compile(r"\{\{\$\.inputs\.parameters\['(\w+)'\]\}\}")
    text = "".join(
        placeholder.sub(
            lambda m: (
                json.dumps(values[m.group(1)]) if isinstance(values[m.group(1)], list) else str(values[m.group(1)])
            ),
            part,
        )
        for part in template
    )
    return json.loads(text)


def test_the_compiled_vertex_yaml_holds_a_tuning_job_that_vertex_can_parse(compiled, plan):
    from google.cloud.aiplatform_v1.types import hyperparameter_tuning_job
    from google.protobuf import json_format

    body = payload(compiled, plan)
    job = hyperparameter_tuning_job.HyperparameterTuningJob()
    json_format.ParseDict(body, job._pb)  # what the launcher does; an unknown or mistyped field raises
    assert job.max_trial_count == 12 and job.parallel_trial_count == 2 and job.max_failed_trial_count == 12
    assert job.study_spec.measurement_selection_type.name == "LAST_MEASUREMENT"
    assert [m.metric_id for m in job.study_spec.metrics] == ["validation_accuracy"]
    assert job.study_spec.metrics[0].goal.name == "MAXIMIZE"
    (pool,) = job.trial_job_spec.worker_pool_specs
    assert (pool.machine_spec.machine_type, pool.machine_spec.accelerator_count) == ("g2-standard-8", 1)
    assert pool.container_spec.image_uri == IMAGE
    assert list(pool.container_spec.command) == ["python", "-m", "textclf.tune.trial"]
    args = list(pool.container_spec.args)
    assert args[:4] == ["--engine", "vertex", "--tokenized", "gs://bucket/root/run/tokenize-op/tokenized"]
    assert "--learning_rate" not in args, "Vertex appends the tuned values itself"
    assert args[args.index("--early_stopping_patience") + 1] == "2"
    assert job.trial_job_spec.base_output_directory.output_uri_prefix.startswith("gs://bucket/root/run/")


def test_its_search_space_is_the_default_space_as_gcpc_serializes_it(plan):
    from google.cloud.aiplatform import hyperparameter_tuning as hpt
    from google_cloud_pipeline_components.v1.hyperparameter_tuning_job import serialize_parameters

    from textclf.tune.space import load_space

    expected = serialize_parameters(
        {
            "learning_rate": hpt.DoubleParameterSpec(min=2e-5, max=3e-4, scale="log"),
            "min_train_steps": hpt.IntegerParameterSpec(min=500, max=4000, scale="log"),
            "batch_size": hpt.DiscreteParameterSpec(values=[16, 32, 64], scale="linear"),
            "warmup_ratio": hpt.DoubleParameterSpec(min=0.0, max=0.2, scale="linear"),
            "weight_decay": hpt.DoubleParameterSpec(min=0.0, max=0.1, scale="linear"),
            "hidden_dropout": hpt.DoubleParameterSpec(min=0.0, max=0.2, scale="linear"),
            "class_weighting": hpt.CategoricalParameterSpec(values=["none", "balanced"]),
        }
    )
    assert plan.study_spec_parameters == expected
    assert [p["parameter_id"] for p in plan.study_spec_parameters] == load_space("").names


def test_the_trial_takes_what_vertex_appends(plan):
    """Vertex adds --name=value per parameter, discrete values as floats: the trial's parser takes them."""
    from transformers import HfArgumentParser

    from textclf.train.settings import TrainSettings
    from textclf.tune.settings import TuneSettings
    from textclf.tune.trial import TrialPaths, integral_arguments

    args = plan.worker_pool_specs[0]["container_spec"]["args"] + [
        "--learning_rate=0.00012",
        "--epochs=3",
        "--batch_size=32.0",
        "--warmup_ratio=0.1",
        "--weight_decay=0.0",
        "--hidden_dropout=0.05",
    ]
    paths, settings, _ = HfArgumentParser((TrialPaths, TrainSettings, TuneSettings)).parse_args_into_dataclasses(
        integral_arguments(args)
    )
    assert paths.engine == "vertex" and (settings.batch_size, settings.epochs, settings.learning_rate) == (
        32,
        3,
        0.00012,
    )


def finished_job(name: str):
    from google.cloud.aiplatform_v1.types import hyperparameter_tuning_job, job_state, study

    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

    def trial(number, state, params, value):
        measurement = (
            study.Measurement(metrics=[study.Measurement.Metric(metric_id="validation_accuracy", value=value)])
            if value is not None
            else None
        )
        return study.Trial(
            id=str(number),
            state=state,
            final_measurement=measurement,
            parameters=[study.Trial.Parameter(parameter_id=k, value=v) for k, v in params.items()],
            start_time=start,
            end_time=start + datetime.timedelta(seconds=60 + number),
        )

    trials = [
        trial(1, study.Trial.State.SUCCEEDED, {"learning_rate": 1e-4, "batch_size": 32.0, "epochs": 3.0}, 0.80),
        trial(2, study.Trial.State.SUCCEEDED, {"learning_rate": 2e-4, "batch_size": 16.0, "epochs": 2.0}, 0.84),
        trial(3, study.Trial.State.INFEASIBLE, {"learning_rate": 3e-4, "batch_size": 64.0, "epochs": 1.0}, None),
    ]
    return hyperparameter_tuning_job.HyperparameterTuningJob(
        name=name, display_name="textclf-tune", state=job_state.JobState.JOB_STATE_SUCCEEDED, trials=trials
    )


def test_the_result_step_reads_every_trial_and_hands_on_the_best(compiled, tmp_path, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform_v1.services.job_service import JobServiceClient
    from kfp import dsl

    from components.tune import tune_vertex_result_op

    name = "projects/123/locations/europe-west4/hyperparameterTuningJobs/987"
    asked = []

    def get_job(self, request=None, *, name=None, **kwargs):
        asked.append(name or request.name)
        return finished_job(asked[-1])

    monkeypatch.setattr(JobServiceClient, "get_hyperparameter_tuning_job", get_job)
    monkeypatch.setattr("google.auth.default", lambda *a, **k: (AnonymousCredentials(), "p"))
    inputs = task_inputs(
        compiled,
        "tune-vertex-result-op",
        {
            "search_space": '{"learning_rate": {"low": 1e-5, "high": 1e-3, "log": true}, '
            '"batch_size": {"choices": [16, 32, 64]}, "epochs": {"low": 1, "high": 4}}'
        },
    )
    resources = json.dumps(
        {
            "resources": [
                {
                    "resourceType": "HyperparameterTuningJob",
                    "resourceUri": f"https://europe-west4-aiplatform.googleapis.com/v1/{name}",
                }
            ]
        }
    )
    output = tune_vertex_result_op.python_func(
        **{**inputs, "gcp_resources": resources},
        dataset=dsl.Dataset(name="dataset", uri="gs://b/d", metadata=METADATA),
        tuning=dsl.Artifact(name="tuning", uri=str(tmp_path / "tuning"), metadata={}),
        report=dsl.Markdown(name="report", uri=str(tmp_path / "report.md"), metadata={}),
    )
    record = json.loads(output)
    assert asked == [name]
    assert record["engine"] == "vertex" and record["best_value"] == pytest.approx(0.84)
    assert record["params"] == {"learning_rate": 2e-4, "batch_size": 16, "epochs": 2}  # typed as the settings are
    report = (tmp_path / "report.md").read_text()
    assert "| 2 | fail |" in report and "61 s" in report
