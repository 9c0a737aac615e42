"""The multi-node train step on Kubeflow: the TrainJob it submits, and how it follows the job.

Transport level: no Kubernetes cluster can run here, so the real ``kubeflow`` SDK (TrainerClient,
0.5.0) talks over real HTTP to tests/cloud/fake_trainer_api.py, a fake Kubernetes API on
loopback that validates each TrainJob against the pinned Trainer v2.3.0 CRD schema
(tests/fixtures/trainer, with its provenance). The model the TrainJob would write is put in a
real Cloud Storage emulator (gcp-storage-emulator), from which the step copies it.
"""

import json
import re
from pathlib import Path

import pytest

from tests.cloud.fake_trainer_api import FakeTrainerApi, Script, schema_errors, trainjob_validator
from textclf.platform.trainjob import TrainJobFailed, TrainJobSettings, TrainJobTimeout
from textclf.tracking import TrackingSettings
from textclf.train import TrainSettings
from textclf.train.launch import TrainJobTarget, TrainLaunchSettings, new_request, run_trainjob, train_step

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "kubeflow"
IMAGE = "europe-docker.pkg.dev/p/textclf/textclf-trainer:abc123"
METADATA = {"labels": ["negative", "positive"], "fingerprint": "f00d", "max_length": 256, "truncation": "head_tail"}
SECRET_VALUE = "wandb-key-that-must-never-leave-the-secret"


def request_for(
    tokenized="gs://bucket/root/run/tokenize-op/tokenized",
    model="gs://bucket/root/run/train-trainjob-op/model",
    num_nodes=2,
    gpus_per_node=4,
    **job,
):
    return new_request(
        tokenized,
        model,
        METADATA,
        TrainSettings(epochs=3, batch_size=16),
        TrainLaunchSettings(num_nodes=num_nodes, gpus_per_node=gpus_per_node),
        TrainJobSettings(**job),
        TrackingSettings(wandb_project="textclf", wandb_api_key_secret=""),
        "nvidia-l4",
        IMAGE,
    )


@pytest.fixture
def trainer_api():
    servers = []

    def start(script: Script | None = None) -> FakeTrainerApi:
        servers.append(FakeTrainerApi(NAMESPACE, script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def client_for(api: FakeTrainerApi):
    from kubeflow.trainer import KubernetesBackendConfig, TrainerClient
    from kubernetes import client as k8s

    configuration = k8s.Configuration()
    configuration.host = api.url
    return TrainerClient(
        backend_config=KubernetesBackendConfig(namespace=NAMESPACE, client_configuration=configuration)
    )


def test_the_request_asks_for_the_gpu_pool_and_runs_torchrun_over_our_command_line():
    request = request_for()
    assert request.image == IMAGE and request.num_nodes == 2 and request.runtime == "torch-distributed"
    assert re.fullmatch(r"textclf-train-[0-9a-f]{8}", request.name)
    assert request.resources_per_node() == {"cpu": "16", "memory": "64Gi", "gpu": "4"}
    assert request.command[:4] == ["torchrun", "--nproc_per_node=4", "-m", "textclf.train"]
    args = dict(zip(request.command[4::2], request.command[5::2]))
    assert args["--tokenized"] == "gs://bucket/root/run/tokenize-op/tokenized"
    assert args["--output"] == "gs://bucket/root/run/train-trainjob-op/model"
    assert args["--checkpoints"] == "gs://bucket/root/run/train-trainjob-op/model.checkpoints"
    assert json.loads(args["--metadata"]) == METADATA
    assert (args["--epochs"], args["--batch_size"], args["--wandb_project"]) == ("3", "16", "textclf")
    pod = request.pod_patch()
    assert pod.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod.tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod.service_account_name == "pipeline-runner"
    (container,) = pod.containers
    assert container.name == "node"
    assert container.env == [
        {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb", "key": "api-key", "optional": True}}}
    ]


def test_artifacts_off_cloud_storage_are_refused_before_anything_is_sent():
    with pytest.raises(ValueError, match="pipeline root on object storage"):
        request_for(tokenized="/tmp/local/tokenized")
    with pytest.raises(ValueError, match="pipeline root on object storage"):  # no fsspec store reads minio://
        request_for(model="minio://mlpipeline/v2/artifacts/model")


def test_the_schema_check_of_the_fake_api_catches_a_misspelt_field():
    """The fake API server's check is the CRD's: it must fail a body a real server would refuse."""
    validator = trainjob_validator()
    good = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": "t"},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}},
    }
    assert schema_errors(validator, good) == []
    assert "numNode" in " ".join(
        schema_errors(validator, {**good, "spec": {**good["spec"], "trainer": {"numNode": 2}}})
    )
    assert schema_errors(validator, {**good, "spec": {"trainer": {"numNodes": 2}}})  # runtimeRef is required


def put_trained_model(bucket, prefix: str) -> None:
    """What rank 0 of the TrainJob uploads when it is done."""
    for name, text in (
        ("config.json", "{}"),
        (
            "training.json",
            json.dumps(
                {
                    **METADATA,
                    "labels": METADATA["labels"],
                    "base_model": "m",
                    "data_fingerprint": "f00d",
                    "precision": "bf16",
                    "code_version": "c",
                }
            ),
        ),
    ):
        bucket.blob(f"{prefix}/{name}").upload_from_string(text)


def run_step(api, bucket, tmp_path, **job):
    return run_trainjob(
        f"gs://{bucket.name}/root/tokenized",
        f"gs://{bucket.name}/root/model",
        str(tmp_path / "model"),
        METADATA,
        TrainSettings(epochs=1),
        TrainLaunchSettings(num_nodes=2, gpus_per_node=1),
        TrainJobSettings(**job),
        TrackingSettings(),
        "nvidia-l4",
        IMAGE,
        client=client_for(api),
        poll_seconds=1,
    )


def test_the_step_submits_a_valid_trainjob_streams_its_log_and_passes_the_model_on(
    trainer_api, gcs_bucket, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WANDB_API_KEY", SECRET_VALUE)  # the step's own key must not travel in the TrainJob
    api = trainer_api()
    put_trained_model(gcs_bucket, "root/model")
    summary = run_step(api, gcs_bucket, tmp_path)

    (body,) = api.created
    assert schema_errors(api.validator, body) == []
    assert SECRET_VALUE not in json.dumps(body)
    spec = body["spec"]
    assert spec["runtimeRef"] == {"kind": "ClusterTrainingRuntime", "name": "torch-distributed"}
    assert spec["activeDeadlineSeconds"] == 24 * 3600
    trainer = spec["trainer"]
    assert trainer["image"] == IMAGE and trainer["numNodes"] == 2
    assert (
        trainer["resourcesPerNode"]["limits"]
        == trainer["resourcesPerNode"]["requests"]
        == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    )
    assert trainer["command"][:4] == ["torchrun", "--nproc_per_node=1", "-m", "textclf.train"]
    assert "env" not in trainer, "no plain env: the only variable is the secret reference below"
    (patch,) = spec["runtimePatches"]
    assert patch["manager"] == "trainer.kubeflow.org/kubeflow-sdk"
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert node["name"] == "node"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert pod["serviceAccountName"] == "pipeline-runner"
    assert pod["containers"] == [
        {
            "name": "node",
            "env": [
                {
                    "name": "WANDB_API_KEY",
                    "valueFrom": {"secretKeyRef": {"key": "api-key", "name": "wandb", "optional": True}},
                }
            ],
        }
    ]
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/name": "textclf-train",
        "app.kubernetes.io/part-of": "textclf",
    }

    assert capsys.readouterr().out.splitlines() == Script().log_lines  # node 0's log, streamed into the step's
    log_calls = [c for c in api.calls if c.path.endswith("/log")]
    assert log_calls and log_calls[0].query["follow"] == ["True"] and log_calls[0].query["container"] == ["node"]
    assert api.deleted == []
    assert summary["data_fingerprint"] == "f00d"
    assert json.loads((tmp_path / "model" / "training.json").read_text())["precision"] == "bf16"


def test_the_train_op_s_launcher_runs_several_nodes_on_kubeflow_as_a_trainjob(trainer_api, gcs_bucket, tmp_path):
    """The one train op, in a Kubeflow pod (``KUBERNETES_SERVICE_HOST``) with num_nodes > 1: its
    launcher submits the TrainJob on the artifacts' URIs and brings the model back to the artifact's path."""
    from types import SimpleNamespace

    api = trainer_api()
    put_trained_model(gcs_bucket, "root/model")
    tokenized = SimpleNamespace(path="/gcs/unused", uri=f"gs://{gcs_bucket.name}/root/tokenized")
    model = SimpleNamespace(path=str(tmp_path / "model"), uri=f"gs://{gcs_bucket.name}/root/model")
    cluster = TrainJobTarget(TrainJobSettings(), "nvidia-l4", IMAGE, client=client_for(api), poll_seconds=1)
    summary = train_step(
        tokenized,
        model,
        METADATA,
        TrainSettings(epochs=1),
        TrainLaunchSettings(num_nodes=3, gpus_per_node=2),
        TrackingSettings(),
        cluster,
        env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
    )
    (body,) = api.created
    assert body["spec"]["trainer"]["numNodes"] == 3
    assert body["spec"]["trainer"]["command"][:2] == ["torchrun", "--nproc_per_node=2"]
    args = body["spec"]["trainer"]["command"]
    assert args[args.index("--tokenized") + 1] == tokenized.uri and args[args.index("--output") + 1] == model.uri
    assert summary["data_fingerprint"] == "f00d" and (tmp_path / "model" / "config.json").exists()


def test_a_failed_trainjob_fails_the_step_with_its_events(trainer_api, gcs_bucket, tmp_path):
    api = trainer_api(
        Script(outcome="Failed", events=[("BackOff", "container node exited with 1: CUDA out of memory")])
    )
    with pytest.raises(TrainJobFailed, match="CUDA out of memory"):
        run_step(api, gcs_bucket, tmp_path)
    assert api.deleted == [], "a failed job holds no GPU: it stays for kubectl describe"


def test_a_trainjob_that_never_runs_is_deleted_when_the_step_gives_up(trainer_api, gcs_bucket, tmp_path):
    api = trainer_api(Script(never_runs=True))
    with pytest.raises(TrainJobTimeout, match="did not reach"):
        run_step(api, gcs_bucket, tmp_path, trainjob_timeout_hours=3 / 3600)
    assert api.deleted == [api.created[0]["metadata"]["name"]]


def test_install_script_pins_the_trainer_release_the_sdk_and_the_fixtures_are_for():
    from importlib.metadata import version

    script = (ROOT / "infra/install-platform.sh").read_text()
    assert re.search(r"^TRAINER_VERSION=v2\.3\.0$", script, re.M)
    assert version("kubeflow") == "0.5.0" and version("kubeflow-trainer-api").startswith("2.3.")
    assert "manifests/overlays/manager?ref=${TRAINER_VERSION}" in script
    assert "manifests/overlays/runtimes?ref=${TRAINER_VERSION}" in script
    assert "v2.3.0" in (ROOT / "tests/fixtures/trainer/README.md").read_text()


def test_the_gpu_pool_can_be_spot_and_is_by_default():
    """Preemptible GPU nodes are what step-level checkpoints are for (static check: no GCP here)."""
    import hcl2

    from tests.rollout.test_rollout_infra import plain, resource

    terraform = {}
    for name in ("gke.tf", "variables.tf"):
        with open(ROOT / "infra" / name) as f:
            for kind, blocks in plain(hcl2.load(f)).items():
                terraform.setdefault(kind, []).extend(blocks)
    pool = resource(terraform, "google_container_node_pool", "gpu")
    assert pool["node_config"][0]["spot"] == "${var.gpu_spot}"
    spot = next(block["gpu_spot"] for block in terraform["variable"] if "gpu_spot" in block)
    assert spot["default"] is True and spot["type"] == "bool" and "checkpoint" in spot["description"]


def rbac_rules() -> dict:
    """(namespace or "" for cluster-wide, api group, resource) -> verbs, from manifests/trainer, as bound to
    pipeline-runner."""
    import yaml

    docs = list(yaml.safe_load_all((ROOT / "manifests/trainer/rbac-trainjob-launcher.yaml").read_text()))
    bound = {
        (d["roleRef"]["kind"], d["roleRef"]["name"], d["metadata"].get("namespace", ""))
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"} in d["subjects"]
    }
    allowed = {}
    for d in docs:
        if (
            d["kind"] in ("Role", "ClusterRole")
            and (d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")) in bound
        ):
            for rule in d["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        allowed.setdefault((d["metadata"].get("namespace", ""), group, resource), set()).update(
                            rule["verbs"]
                        )
    return allowed


def needed_permission(call) -> tuple:
    """The (namespace, api group, resource, verb) an API server would check for ``call``."""
    parts = call.path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = rest[1] if rest[0] == "namespaces" else ""
    rest = rest[2:] if rest[0] == "namespaces" else rest
    resource = "/".join([rest[0], *rest[2:3]])  # pods/log
    named = len(rest) > 1
    verb = {"POST": "create", "DELETE": "delete"}.get(call.method, "get" if named else "list")
    return namespace, group, resource, verb


def test_the_launchers_rbac_allows_every_call_the_sdk_makes(trainer_api, gcs_bucket, tmp_path):
    calls = []
    api = trainer_api()
    put_trained_model(gcs_bucket, "root/model")
    run_step(api, gcs_bucket, tmp_path / "ok")
    calls += api.calls
    stuck = trainer_api(Script(never_runs=True))
    with pytest.raises(TrainJobTimeout):
        run_step(stuck, gcs_bucket, tmp_path / "stuck", trainjob_timeout_hours=2 / 3600)
    calls += stuck.calls
    allowed = rbac_rules()
    needed = {needed_permission(call) for call in calls}
    assert {verb for *_, verb in needed} >= {"create", "get", "list", "delete"}
    missing = [n for n in needed if n[3] not in allowed.get(n[:3], set())]
    assert not missing, f"pipeline-runner would be refused: {missing}"
