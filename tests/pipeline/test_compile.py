"""Compiled YAML for both targets, loaded back: DAG, condition, GPU settings, no secrets."""

import yaml
import pytest
from kfp import components

from pipelines.compile import compile_pipeline
from pipelines.pipeline import GPU_TYPES, STEP_RESOURCES


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    return {target: out / f"{target}.yaml" for target in ("kubeflow", "vertex") if compile_pipeline(target, str(out / f"{target}.yaml"))}


def documents(path):
    return list(yaml.safe_load_all(path.read_text()))


def test_dag_order_and_deploy_under_the_gate(compiled):
    spec = documents(compiled["kubeflow"])[0]
    tasks = spec["root"]["dag"]["tasks"]
    deps = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    assert deps["ingest-op"] == {"source-version-op"}
    assert deps["tokenize-op"] == {"ingest-op"}
    assert deps["train-op"] == {"ingest-op", "tokenize-op"}
    assert deps["evaluate-op"] == {"train-op", "tokenize-op"}
    assert deps["gate-op"] == {"evaluate-op"}
    condition = tasks["condition-1"]
    assert "gate-op" in condition["dependentTasks"]
    assert "== 'pass'" in condition["triggerPolicy"]["condition"]
    assert "deploy-op" in spec["components"]["comp-condition-1"]["dag"]["tasks"]
    assert tasks["ingest-op"]["cachingOptions"]["enableCache"] is True
    assert tasks["tokenize-op"]["cachingOptions"]["enableCache"] is True
    assert tasks["train-op"]["retryPolicy"]["maxRetryCount"] == 2


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_cpu_steps_get_their_measured_requests_with_memory_limit_equal_to_request(compiled, target):
    executors = documents(compiled[target])[0]["deploymentSpec"]["executors"]
    for step, wanted in STEP_RESOURCES.items():
        resources = executors[f"exec-{step}-op"]["container"]["resources"]
        assert resources["resourceCpuRequest"] == wanted["cpu"], step
        assert resources["resourceMemoryRequest"] == resources["resourceMemoryLimit"] == wanted["memory"], step


def test_every_parameter_is_documented(compiled):
    spec = documents(compiled["vertex"])[0]
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert len(parameters) > 30
    undocumented = [name for name, p in parameters.items() if not p.get("description")]
    assert not undocumented


def test_gpu_settings_per_target(compiled):
    kubeflow, vertex = documents(compiled["kubeflow"]), documents(compiled["vertex"])
    executors = kubeflow[0]["deploymentSpec"]["executors"]
    assert executors["exec-train-op"]["container"]["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    platform = kubeflow[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-op"]
    assert platform["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert platform["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    assert platform["secretAsEnv"][0]["secretName"] == "wandb"
    assert len(vertex) == 1, "the vertex YAML must carry no kubernetes platform spec"
    accelerator = vertex[0]["deploymentSpec"]["executors"]["exec-train-op"]["container"]["resources"]["accelerator"]
    assert accelerator["resourceType"] == GPU_TYPES["nvidia-l4"]
    assert "accelerator" not in vertex[0]["deploymentSpec"]["executors"]["exec-evaluate-op"]["container"].get("resources", {})


def test_compilation_is_byte_for_byte_deterministic(compiled, tmp_path):
    again = compile_pipeline("kubeflow", str(tmp_path / "again.yaml"))
    assert open(again, "rb").read() == compiled["kubeflow"].read_bytes()


def test_yaml_loads_back_as_a_component(compiled):
    pipeline = components.load_component_from_file(str(compiled["kubeflow"]))
    assert pipeline.name == "textclf-train"


def test_vertex_yaml_builds_a_pipeline_job_offline(compiled):
    """aiplatform.PipelineJob parses the YAML; anonymous credentials, nothing is sent."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name="textclf", template_path=str(compiled["vertex"]), pipeline_root="gs://bucket/root",
        parameter_values={"source": "gs://bucket/data.csv", "epochs": 1}, project="demo-project",
        location="europe-west4", credentials=AnonymousCredentials(), enable_caching=True,
    )
    runtime = job._gca_resource.runtime_config
    assert runtime.gcs_output_directory == "gs://bucket/root"
    assert runtime.parameter_values["epochs"] == 1
