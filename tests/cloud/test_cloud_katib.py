"""The tune step on Kubeflow: the Katib Experiment it creates, and how it follows it.

Transport level: no cluster can run Katib here, so the tune op's own code (the function the
compiled component runs, with the inputs the compiled YAML gives it) talks through the real
``kubeflow`` SDK and ``kubernetes`` client, configured by a kubeconfig as in a pod, to
tests/cloud/fake_katib_api.py: a fake API server on loopback that checks the Experiment against
Katib v0.19.0's pinned CRD, Go types and webhook rules, and its trial template against the pinned
TrainJob CRD (tests/fixtures/katib, tests/fixtures/trainer, with their sources and sha256).
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.cloud.compiled import task_inputs
from tests.cloud.fake_katib_api import (
    FakeKatibApi,
    KatibScript,
    filled_trial,
    katib_config,
    sample_values,
    webhook_errors,
)

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "kubeflow"
IMAGE = "europe-docker.pkg.dev/p/textclf/textclf-trainer:abc123"
METADATA = {"labels": ["negative", "positive"], "fingerprint": "f00d", "max_length": 128, "truncation": "head"}
SECRET_VALUE = "wandb-key-that-must-never-leave-the-secret"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from pipelines.compile import compile_pipeline

    path = compile_pipeline("kubeflow", str(tmp_path_factory.mktemp("yaml") / "tune-kubeflow.yaml"), tune=True)
    return list(yaml.safe_load_all(open(path)))


@pytest.fixture
def kube(tmp_path, monkeypatch):
    """A fake cluster and a kubeconfig pointing at it, as the step's pod would have."""
    servers = []

    def start(script: KatibScript | None = None) -> FakeKatibApi:
        servers.append(FakeKatibApi(NAMESPACE, script))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": servers[-1].url}}],
            "users": [{"name": "fake", "user": {"token": "t"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NAMESPACE}}],
        }
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
        monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
        # The client reads KUBECONFIG when it is imported; a pod's process would have had it from the start.
        monkeypatch.setattr("kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


DEFAULT_TRIALS = [
    (
        "Succeeded",
        {
            "learning_rate": "0.0001",
            "min_train_steps": "1500",
            "batch_size": "32",
            "warmup_ratio": "0.06",
            "weight_decay": "0.01",
            "hidden_dropout": "0.1",
        },
        0.81,
    ),
    (
        "Succeeded",
        {
            "learning_rate": "0.00021",
            "min_train_steps": "800",
            "batch_size": "16",
            "warmup_ratio": "0.1",
            "weight_decay": "0.05",
            "hidden_dropout": "0.0",
        },
        0.86,
    ),
    (
        "EarlyStopped",
        {
            "learning_rate": "2.5e-05",
            "min_train_steps": "600",
            "batch_size": "64",
            "warmup_ratio": "0.0",
            "weight_decay": "0.0",
            "hidden_dropout": "0.2",
        },
        None,
    ),
]


def run_step(compiled, tmp_path, overrides=None, **kwargs):
    from kfp import dsl

    from components.tune import tune_katib_op

    inputs = task_inputs(compiled[0], "tune-katib-op", overrides)
    assert inputs["trainer_image"] and inputs["gpu_type"] == "nvidia-l4"
    inputs["trainer_image"] = IMAGE
    dataset = dsl.Dataset(name="dataset", uri="gs://bucket/root/run/ingest-op/dataset", metadata=METADATA)
    tokenized = dsl.Dataset(
        name="tokenized", uri="gs://bucket/root/run/tokenize-op/tokenized", metadata={"max_length": 128}
    )
    tuning = dsl.Artifact(name="tuning", uri=str(tmp_path / "tuning"), metadata={})
    report = dsl.Markdown(name="report", uri=str(tmp_path / "report.md"), metadata={})
    import textclf.tune.katib as katib

    original = katib.follow
    katib_follow = lambda *args, **kw: original(*args[:4], poll_seconds=0.05)  # noqa: E731
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(katib, "follow", katib_follow)
        for name, value in kwargs.items():
            patch.setattr(katib, name, value)
        output = tune_katib_op.python_func(**inputs, dataset=dataset, tokenized=tokenized, tuning=tuning, report=report)
    return json.loads(output), tmp_path


def test_the_compiled_kubeflow_yaml_creates_an_experiment_katib_accepts(compiled, kube, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET_VALUE)  # the step's own key must not travel in the Experiment
    api = kube(KatibScript(trials=DEFAULT_TRIALS, best=1))
    record, out = run_step(compiled, tmp_path)

    (body,) = api.created
    assert api.experiment_errors(body) == []
    assert SECRET_VALUE not in json.dumps(body)
    spec = body["spec"]
    assert re.fullmatch(r"textclf-[0-9a-f]{12}", body["metadata"]["name"])
    assert spec["algorithm"] == {"algorithmName": "multivariate-tpe"}
    assert spec["earlyStopping"] == {
        "algorithmName": "medianstop",  # with the local median pruner's rule: 3 trials first, none stopped in 2 epochs
        "algorithmSettings": [{"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "4"}],
    }
    assert spec["objective"] == {
        "type": "maximize",
        "objectiveMetricName": "validation_accuracy",
        "additionalMetricNames": ["validation_loss"],
        "metricStrategies": [{"name": "validation_accuracy", "value": "latest"}],
    }
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (12, 2)
    # The default search space, in Katib's terms.
    parameters = {p["name"]: p for p in spec["parameters"]}
    assert parameters["learning_rate"] == {
        "name": "learning_rate",
        "parameterType": "double",
        "feasibleSpace": {"min": "2e-05", "max": "0.0003", "distribution": "logUniform"},
    }
    assert parameters["min_train_steps"]["parameterType"] == "int" and parameters["batch_size"]["feasibleSpace"] == {
        "list": ["16", "32", "64"]
    }
    # Each trial: one TrainJob on one GPU of the pool, running the trial entry point with the tuned values.
    trial = filled_trial(body, sample_values(body))
    trainer = trial["spec"]["trainer"]
    assert trainer["image"] == IMAGE and trainer["numNodes"] == 1
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    assert trainer["command"][:5] == ["python", "-m", "textclf.tune.trial", "--engine", "katib"]
    args = dict(zip(trainer["command"][5::2], trainer["command"][6::2]))
    assert args["--tokenized"] == "gs://bucket/root/run/tokenize-op/tokenized"
    assert args["--learning_rate"] == "2e-05" and args["--early_stopping_patience"] == "2"  # tuned, and a base setting
    pod = trial["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0][
        "template"
    ]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["serviceAccountName"] == "pipeline-runner"

    # What the step hands on: Katib's best trial, typed as the settings are, and a report of every trial.
    assert record["engine"] == "katib" and record["best_value"] == pytest.approx(0.86)
    assert record["params"] == {
        "learning_rate": 0.00021,
        "min_train_steps": 800,
        "batch_size": 16,
        "warmup_ratio": 0.1,
        "weight_decay": 0.05,
        "hidden_dropout": 0.0,
    }
    report = (out / "report.md").read_text()
    assert "| 2 | pruned |" in report and "trial1" in report and "data:image/png;base64," in report
    assert api.deleted == []


def test_the_trial_command_parses_as_the_trial_entry_point_reads_it(compiled, kube, tmp_path):
    """What Katib substitutes into the command is what textclf.tune.trial accepts, types included."""
    from transformers import HfArgumentParser

    from textclf.train.settings import TrainSettings
    from textclf.tune.settings import TuneSettings
    from textclf.tune.trial import TrialPaths, integral_arguments

    api = kube(KatibScript(trials=DEFAULT_TRIALS))
    run_step(compiled, tmp_path)
    body = api.created[0]
    values = {
        "learning_rate": "0.000123",
        "min_train_steps": "1500",
        "batch_size": "64",
        "warmup_ratio": "0.1",
        "weight_decay": "0",
        "hidden_dropout": "0.15",
        "class_weighting": "balanced",
    }
    command = filled_trial(body, values)["spec"]["trainer"]["command"]
    paths, settings, tune = HfArgumentParser((TrialPaths, TrainSettings, TuneSettings)).parse_args_into_dataclasses(
        integral_arguments(command[3:])
    )
    assert paths.engine == "katib" and json.loads(paths.metadata)["fingerprint"] == "f00d"
    assert (settings.learning_rate, settings.min_train_steps, settings.batch_size, settings.hidden_dropout) == (
        0.000123,
        1500,
        64,
        0.15,
    )
    assert settings.class_weighting == "balanced"
    assert tune.tune_metric == "accuracy"


def test_a_retried_step_follows_the_experiment_it_created(compiled, kube, tmp_path):
    api = kube(KatibScript(trials=DEFAULT_TRIALS, best=1))
    run_step(compiled, tmp_path / "first")
    api.experiment_gets = 0
    record, _ = run_step(compiled, tmp_path / "retry")
    assert len(api.created) == 1, "the retry must not start the search over"
    assert record["best_value"] == pytest.approx(0.86)


def test_a_changed_search_gets_its_own_experiment(compiled, kube, tmp_path):
    api = kube(KatibScript(trials=DEFAULT_TRIALS))
    run_step(compiled, tmp_path / "a")
    run_step(
        compiled,
        tmp_path / "b",
        overrides={
            "search_space": '{"learning_rate": {"low": 1e-5, "high": 1e-3, "log": true}}',
            "trial_max_steps": 50,
        },
    )
    assert len(api.created) == 2 and len({b["metadata"]["name"] for b in api.created}) == 2
    assert [p["name"] for p in api.created[1]["spec"]["parameters"]] == ["learning_rate"]


def test_a_failed_experiment_fails_the_step_and_stays(compiled, kube, tmp_path):
    from textclf.tune.katib import ExperimentFailed

    api = kube(KatibScript(outcome="Failed"))
    with pytest.raises(ExperimentFailed, match="has failed"):
        run_step(compiled, tmp_path)
    assert api.deleted == []


def test_an_experiment_that_never_ends_is_deleted_when_the_step_gives_up(compiled, kube, tmp_path):
    from textclf.tune.katib import ExperimentTimeout

    api = kube(KatibScript(outcome="Running"))
    with pytest.raises(ExperimentTimeout, match="did not finish"):
        run_step(compiled, tmp_path, overrides={"tune_timeout_hours": 0.3 / 3600})
    assert api.deleted == [api.created[0]["metadata"]["name"]]


def test_the_fake_webhook_refuses_what_katib_would():
    """The checks can fail: each broken field is named."""
    from textclf.tune.katib import experiment_body
    from textclf.tune.settings import CloudTuneSettings, TuneSettings
    from textclf.tune.space import load_space

    trial = {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"command": ["python", "--learning_rate", "${trialParameters.learning_rate}"]},
    }
    body = experiment_body(
        "textclf-abc",
        load_space('{"learning_rate": {"low": 1e-5, "high": 1e-3, "log": true}}'),
        TuneSettings(n_trials=4),
        CloudTuneSettings(),
        trial,
    )
    api = FakeKatibApi.__new__(FakeKatibApi)  # the checks only, no server
    import jsonschema

    from tests.cloud.fake_katib_api import crd_schema, experiment_validator
    from tests.cloud.fake_trainer_api import trainjob_validator

    api.types, api.crd, api.config = experiment_validator(), jsonschema.Draft7Validator(crd_schema()), katib_config()
    api.trial_validator = trainjob_validator()
    assert api.experiment_errors(body) == []
    broken = json.loads(json.dumps(body))
    broken["spec"]["algorithm"]["algorithmName"] = "tpe-ish"
    broken["spec"]["objective"]["objectiveMetricNam"] = "x"
    broken["spec"]["trialTemplate"]["trialSpec"]["spec"]["trainer"]["command"].append("${trialParameters.epochs}")
    errors = " ".join(api.experiment_errors(broken))
    assert "objectiveMetricNam" in errors  # Katib's Go types have no such field
    assert "Suggestion config" in errors and "placeholders" in errors
    assert webhook_errors({**body, "metadata": {"name": "Textclf_tune"}}, katib_config())


def test_the_launchers_rbac_allows_every_call_the_step_makes(compiled, kube, tmp_path):
    """Every call of a run that succeeds, and of one that times out (and deletes), against the Roles
    manifests/katib and manifests/trainer bind to pipeline-runner."""
    from tests.cloud.test_cloud_trainjob import needed_permission, rbac_rules
    from textclf.tune.katib import ExperimentTimeout

    ok = kube(KatibScript(trials=DEFAULT_TRIALS))
    run_step(compiled, tmp_path / "ok")
    stuck = kube(KatibScript(outcome="Running"))
    with pytest.raises(ExperimentTimeout):
        run_step(compiled, tmp_path / "stuck", overrides={"tune_timeout_hours": 0.3 / 3600})
    allowed = rbac_rules()
    for doc in yaml.safe_load_all((ROOT / "manifests/katib/rbac-tune-launcher.yaml").read_text()):
        if doc["kind"] == "Role":
            for rule in doc["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        allowed.setdefault((doc["metadata"]["namespace"], group, resource), set()).update(rule["verbs"])
    needed = {needed_permission(call) for call in ok.calls + stuck.calls}
    needed = {n for n in needed if n[1:3] != ("", "configmaps")}  # the SDK's version probe, allowed to fail
    assert {("kubeflow", "kubeflow.org", "experiments", v) for v in ("create", "get", "delete")} <= needed
    missing = [n for n in needed if n[3] not in allowed.get(n[:3], set())]
    assert not missing, f"pipeline-runner would be refused: {missing}"
    kustomization = yaml.safe_load((ROOT / "manifests/katib/kustomization.yaml").read_text())
    assert kustomization["resources"] == ["rbac-tune-launcher.yaml"]


def test_install_script_installs_the_katib_release_the_fixtures_are_for_and_the_launchers_rbac():
    """Static check (no cluster here): the platform script installs the Katib release whose API the
    fake server checks Experiments against, and grants pipeline-runner the calls after it."""
    script = (ROOT / "infra/install-platform.sh").read_text()
    assert re.search(r"^KATIB_VERSION=v0\.19\.0$", script, re.M)
    assert "tag `v0.19.0`" in (ROOT / "tests/fixtures/katib/README.md").read_text()
    install = script.index("manifests/v1beta1/installs/katib-standalone?ref=${KATIB_VERSION}")
    assert install < script.index("kubectl apply -k manifests/katib")
