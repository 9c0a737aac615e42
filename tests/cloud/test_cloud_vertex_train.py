"""The Vertex train step: the CustomJob the compiled pipeline sends, through GCPC's own launcher.

Transport level: Vertex AI cannot be reached here. The test takes the compiled vertex YAML,
fills in its placeholders as Vertex Pipelines does (pipeline values nested in
``worker_pool_specs`` arrive as strings: GCPC's preview launcher documents it, b/353577594),
runs the launcher command exactly as compiled (``python3 -c``: our integer fix, then
google-cloud-pipeline-components' CustomJob launcher, unmodified) and lets the real
``aiplatform_v1`` JobServiceClient build the request; only its gRPC stubs are replaced, by fakes
that record the CreateCustomJobRequest proto and answer JOB_STATE_SUCCEEDED.
"""

import json
import re
import sys

import pytest
import yaml

from components.train import vertex_train_plan_op
from pipelines.compile import compile_pipeline
from pipelines.vertex_train import typed_worker_pools
from textclf import images

PROJECT, LOCATION = "my-project", "europe-west4"
SECRET_VALUE = "wandb-key-that-must-never-leave-the-step"
PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")


@pytest.fixture(scope="module")
def vertex_spec(tmp_path_factory):
    path = compile_pipeline("vertex", str(tmp_path_factory.mktemp("vertex") / "vertex.yaml"))
    with open(path) as stream:
        return yaml.safe_load(stream)


def substitute(text: str, values: dict) -> str:
    """Vertex's placeholder filling: strings as they are, other values as JSON."""
    return PLACEHOLDER.sub(
        lambda m: values[m.group(1)] if isinstance(values[m.group(1)], str) else json.dumps(values[m.group(1)]), text
    )


def nested(value, values: dict):
    """Placeholders inside a constant list/dict: replaced as strings (what Vertex does)."""
    if isinstance(value, dict):
        return {k: nested(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [nested(v, values) for v in value]
    return PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), value) if isinstance(value, str) else value


def launcher_argv(
    spec: dict, task_name: str, pipeline_values: dict, plan: dict, gcp_resources: str
) -> tuple[str, list[str]]:
    """(the launcher's ``-c`` program, its arguments) for one train task, placeholders filled."""
    component = next(
        c
        for name, c in spec["components"].items()
        if name.startswith("comp-condition") and task_name in c.get("dag", {}).get("tasks", {})
    )
    task = component["dag"]["tasks"][task_name]
    defaults = {k: d.get("defaultValue") for k, d in spec["root"]["inputDefinitions"]["parameters"].items()}
    channels = {
        **{f"pipelinechannel--{k}": v for k, v in {**defaults, **pipeline_values}.items()},
        **{f"pipelinechannel--vertex-train-plan-op-{k}": v for k, v in plan.items()},
    }
    inputs = {}
    for name, given in task["inputs"]["parameters"].items():
        if "runtimeValue" in given:
            inputs[name] = nested(given["runtimeValue"]["constant"], channels)
        else:
            inputs[name] = channels[given["componentInputParameter"]]
    executor = task["componentRef"]["name"]
    for name, definition in spec["components"][executor]["inputDefinitions"]["parameters"].items():
        inputs.setdefault(name, definition.get("defaultValue"))
    inputs.update(project=PROJECT, location=LOCATION)  # Vertex fills {{$.pipeline_google_cloud_...}}
    container = spec["deploymentSpec"]["executors"][spec["components"][executor]["executorLabel"]]["container"]
    executor_input = json.dumps({"inputs": {"parameterValues": {"epochs": 1}}, "outputs": {"outputFile": "/gcs/b/out"}})
    args = []
    for arg in container["args"]:
        arg = substitute(arg, inputs).replace("{{$.json_escape[1]}}", json.dumps(executor_input)[1:-1])
        args.append(arg.replace("{{$.outputs.parameters['gcp_resources'].output_file}}", gcp_resources))
    assert container["command"][:3] == ["python3", "-u", "-c"]
    return container["command"][3], args


class FakeJobService:
    """The JobService gRPC stubs: record each CreateCustomJobRequest, answer SUCCEEDED."""

    def __init__(self, monkeypatch):
        import google.auth
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.aiplatform_v1.services.job_service.transports.grpc import JobServiceGrpcTransport
        from google.cloud.aiplatform_v1.types import custom_job, job_state

        self.requests = []

        def create(request, **kwargs):
            self.requests.append(request)
            return custom_job.CustomJob(
                name=f"{request.parent}/customJobs/123", display_name=request.custom_job.display_name
            )

        def get(request, **kwargs):
            return custom_job.CustomJob(name=request.name, state=job_state.JobState.JOB_STATE_SUCCEEDED)

        monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), PROJECT))
        monkeypatch.setattr(JobServiceGrpcTransport, "create_custom_job", property(lambda self: create))
        monkeypatch.setattr(JobServiceGrpcTransport, "get_custom_job", property(lambda self: get))


def run_launcher(program: str, args: list[str], monkeypatch):
    monkeypatch.setattr(sys, "argv", ["-c", *args])
    exec(compile(program, "<launcher>", "exec"), {"__name__": "__main__"})


def plan_for(num_nodes: int, gpus_per_node: int) -> dict:
    """The plan step, run for real."""
    plan = vertex_train_plan_op.python_func(
        num_nodes=num_nodes, gpus_per_node=gpus_per_node, accelerator_type="NVIDIA_L4"
    )
    return plan._asdict()


@pytest.mark.parametrize("task_name, num_nodes", [("train-op", 1), ("train-op-2", 3)])
def test_the_custom_job_sent_to_vertex_has_the_pools_gpus_and_replicas_of_the_parameters(
    vertex_spec, task_name, num_nodes, monkeypatch, tmp_path
):
    monkeypatch.setenv("WANDB_API_KEY", SECRET_VALUE)
    service = FakeJobService(monkeypatch)
    plan = plan_for(num_nodes, 2)
    program, args = launcher_argv(
        vertex_spec, task_name, {"num_nodes": num_nodes, "gpus_per_node": 2}, plan, str(tmp_path / "gcp_resources")
    )
    run_launcher(program, args, monkeypatch)

    (request,) = service.requests
    assert request.parent == f"projects/{PROJECT}/locations/{LOCATION}"
    job = request.custom_job
    pools = job.job_spec.worker_pool_specs
    assert [p.replica_count for p in pools] == ([1] if num_nodes == 1 else [1, num_nodes - 1])
    for pool in pools:
        assert pool.machine_spec.machine_type == "g2-standard-24" == plan["machine_type"]
        assert pool.machine_spec.accelerator_type.name == "NVIDIA_L4"
        assert pool.machine_spec.accelerator_count == 2
        assert pool.container_spec.image_uri == images.TRAINER_IMAGE
        assert "def train_op(" in pool.container_spec.command[-1]  # the same training code as the other targets
        assert list(pool.container_spec.args[:1]) == ["--executor_input"]
        assert json.loads(pool.container_spec.args[1])["inputs"]["parameterValues"]["epochs"] == 1
        assert list(pool.container_spec.env) == []
        assert pool.disk_spec.boot_disk_size_gb == 100
    assert job.job_spec.scheduling.restart_job_on_worker_restart is True
    assert SECRET_VALUE not in str(request)
    assert "customJobs/123" in (tmp_path / "gcp_resources").read_text()


def test_without_the_integer_fix_the_api_client_refuses_the_string_counts(vertex_spec, monkeypatch, tmp_path):
    """Why the launcher runs behind typed_worker_pools: GCPC's launcher alone hands "2" to the client."""
    FakeJobService(monkeypatch)
    _, args = launcher_argv(
        vertex_spec, "train-op-2", {"num_nodes": 3, "gpus_per_node": 2}, plan_for(3, 2), str(tmp_path / "gcp_resources")
    )
    from google_cloud_pipeline_components.container.v1.custom_job import launcher

    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        launcher.main(args)


def test_typed_worker_pools_turns_counts_into_integers_and_leaves_the_rest():
    payload = {
        "display_name": "x",
        "job_spec": {
            "worker_pool_specs": [
                {
                    "replica_count": 1.0,
                    "machine_spec": {"machine_type": "g2-standard-8", "accelerator_count": "4"},
                    "disk_spec": {"boot_disk_size_gb": 100.0},
                    "container_spec": {"args": ["--n", "2"]},
                },
                {"replica_count": "7", "machine_spec": {"machine_type": "g2-standard-8", "accelerator_count": "4"}},
            ]
        },
    }
    pools = json.loads(typed_worker_pools(json.dumps(payload)))["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 7]
    assert [p["machine_spec"]["accelerator_count"] for p in pools] == [4, 4]
    assert pools[0]["disk_spec"]["boot_disk_size_gb"] == 100
    assert (
        pools[0]["container_spec"]["args"] == ["--n", "2"]
        and pools[0]["machine_spec"]["machine_type"] == "g2-standard-8"
    )
