"""Compiled YAML for both targets, loaded back: DAG, condition, GPU settings, no secrets."""

from pathlib import Path

import pytest
import yaml
from kfp import components

from pipelines.compile import compile_pipeline
from pipelines.pipeline import GPU_TYPES, STEP_RESOURCES
from textclf import images


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    return {
        target: out / f"{target}.yaml"
        for target in ("kubeflow", "vertex")
        if compile_pipeline(target, str(out / f"{target}.yaml"))
    }


def documents(path):
    return list(yaml.safe_load_all(path.read_text()))


def branch_tasks(spec: dict) -> dict:
    """Tasks of the train branches (``one-node`` / ``several-nodes``) by name, from every condition component."""
    return {
        name: task
        for comp_name, comp in spec["components"].items()
        if comp_name.startswith("comp-condition")
        for name, task in comp.get("dag", {}).get("tasks", {}).items()
        if name.startswith("train")
    }


def test_dag_order_and_deploy_under_the_gate(compiled):
    spec = documents(compiled["kubeflow"])[0]
    tasks = spec["root"]["dag"]["tasks"]
    deps = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    assert deps["ingest-op"] == {"source-version-op"}
    assert deps["tokenize-op"] == {"ingest-op"}
    train = next(name for name in tasks if name.startswith("condition-branches"))  # one-node | several-nodes
    assert deps[train] == {"ingest-op", "tokenize-op"}
    assert deps["optimize-op"] == {train, "tokenize-op"}
    assert deps["evaluate-op"] == {"optimize-op", "tokenize-op"}
    assert deps["gate-op"] == {"evaluate-op"}
    gated = next(name for name in tasks if name.startswith("condition-") and "branches" not in name)
    assert "gate-op" in tasks[gated]["dependentTasks"]
    assert "== 'pass'" in tasks[gated]["triggerPolicy"]["condition"]
    assert "deploy-op" in spec["components"][f"comp-{gated}"]["dag"]["tasks"]
    # What evaluate scored is what deploy serves: both read the optimize step's Model directory.
    deploy = spec["components"][f"comp-{gated}"]["dag"]["tasks"]["deploy-op"]
    model_input = deploy["inputs"]["artifacts"]["model"]["componentInputArtifact"]
    assert tasks[gated]["inputs"]["artifacts"][model_input]["taskOutputArtifact"] == {
        "outputArtifactKey": "optimized",
        "producerTask": "optimize-op",
    }
    assert tasks["evaluate-op"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "optimized",
        "producerTask": "optimize-op",
    }
    assert tasks["ingest-op"]["cachingOptions"]["enableCache"] is True
    assert tasks["tokenize-op"]["cachingOptions"]["enableCache"] is True
    trains = branch_tasks(spec)
    assert set(trains) == {"train-op", "train-op-2"}  # one op, in the pod of each branch
    assert all(task["retryPolicy"]["maxRetryCount"] == 2 for task in trains.values())


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


def test_kubeflow_trains_one_node_in_its_task_on_gpus_per_node_gpus_and_several_nodes_through_a_trainjob(compiled):
    kubeflow = documents(compiled["kubeflow"])
    spec, platform = kubeflow[0], kubeflow[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    conditions = {
        task["taskInfo"]["name"]: (task["triggerPolicy"]["condition"], task["componentRef"]["name"])
        for comp in spec["components"].values()
        for task in comp.get("dag", {}).get("tasks", {}).values()
        if "triggerPolicy" in task
    }
    one_node, one_node_component = conditions["one-node"]
    several_nodes, several_nodes_component = conditions["several-nodes"]
    assert one_node == "int(inputs.parameter_values['pipelinechannel--num_nodes']) == 1"
    assert several_nodes == f"!({one_node})"
    assert set(spec["components"][one_node_component]["dag"]["tasks"]) == {"train-op"}
    assert set(spec["components"][several_nodes_component]["dag"]["tasks"]) == {"train-op-2"}
    executors = spec["deploymentSpec"]["executors"]
    # One op: both branches run the same component (the launcher decides at run time what it starts).
    assert executors["exec-train-op"]["container"]["command"] == executors["exec-train-op-2"]["container"]["command"]
    assert executors["exec-train-op"]["container"]["args"] == executors["exec-train-op-2"]["container"]["args"]
    accelerator = executors["exec-train-op"]["container"]["resources"]["accelerator"]
    assert accelerator["resourceType"] == "nvidia.com/gpu"
    assert accelerator["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}"
    assert platform["exec-train-op"]["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert platform["exec-train-op"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    assert platform["exec-train-op"]["secretAsEnv"][0]["secretName"] == "wandb"
    # The TrainJob's launcher is a CPU task: the GPUs are the TrainJob's, never held by a waiting pod.
    assert "accelerator" not in executors["exec-train-op-2"]["container"]["resources"]
    assert "exec-train-op-2" not in platform
    assert (
        spec["components"][several_nodes_component]["dag"]["tasks"]["train-op-2"]["taskInfo"]["name"]
        == "train-trainjob"
    )
    launcher = branch_tasks(spec)["train-op-2"]["inputs"]["parameters"]
    assert launcher["gpu_type"] == {"runtimeValue": {"constant": "nvidia-l4"}}
    assert launcher["trainer_image"]["runtimeValue"]["constant"] == images.TRAINER_IMAGE


def test_vertex_trains_as_a_custom_job_with_worker_pools_from_the_parameters(compiled):
    vertex = documents(compiled["vertex"])
    assert len(vertex) == 1, "the vertex YAML must carry no kubernetes platform spec"
    spec = vertex[0]
    executors = spec["deploymentSpec"]["executors"]
    launchers = [name for name in executors if name.startswith("exec-train-op")]
    assert len(launchers) == 2  # one-node and several-nodes
    for name in launchers:
        container = executors[name]["container"]
        assert container["image"] == "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"
        assert container["command"][:3] == ["python3", "-u", "-c"]  # GCPC's launcher behind typed_worker_pools
        assert (
            "from google_cloud_pipeline_components.container.v1.custom_job import launcher" in container["command"][3]
        )
    pools = {
        name: task["inputs"]["parameters"]["worker_pool_specs"]["runtimeValue"]["constant"]
        for name, task in branch_tasks(spec).items()
    }
    one, several = pools["train-op"], pools["train-op-2"]
    assert len(one) == 1 and len(several) == 2
    machine = {
        "machine_type": "{{$.inputs.parameters['pipelinechannel--vertex-train-plan-op-machine_type']}}",
        "accelerator_type": GPU_TYPES["nvidia-l4"],
        "accelerator_count": "{{$.inputs.parameters['pipelinechannel--gpus_per_node']}}",
    }
    for pool in (*one, *several):
        assert pool["machine_spec"] == machine
        assert pool["container_spec"]["image_uri"] == images.TRAINER_IMAGE
        assert pool["container_spec"]["args"][:2] == ["--executor_input", "{{$.json_escape[1]}}"]
    assert one[0]["replica_count"] == several[0]["replica_count"] == 1
    assert (
        several[1]["replica_count"]
        == "{{$.inputs.parameters['pipelinechannel--vertex-train-plan-op-worker_replicas']}}"
    )
    assert "accelerator" not in executors["exec-evaluate-op"]["container"].get("resources", {})


def test_the_new_training_parameters_are_in_both_yamls_with_their_descriptions(compiled):
    from textclf.platform.trainjob import TrainJobSettings
    from textclf.settings import help_of, pipeline_fields
    from textclf.train import TrainSettings
    from textclf.train.launch import TrainLaunchSettings

    fields = pipeline_fields(TrainSettings, TrainLaunchSettings, TrainJobSettings)
    both = ("num_nodes", "gpus_per_node", "checkpoint_every_steps", "checkpoint_every_minutes", "dataloader_workers")
    trainjob_only = ("trainjob_runtime", "trainjob_service_account", "trainjob_timeout_hours")
    for target, names in (("kubeflow", both + trainjob_only), ("vertex", both)):
        parameters = documents(compiled[target])[0]["root"]["inputDefinitions"]["parameters"]
        for name in names:
            assert parameters[name]["description"] == help_of(fields[name]), (target, name)
        if target == "vertex":
            assert not set(trainjob_only) & set(parameters)
        assert "gpu_type" not in parameters and "trainer_image" not in parameters  # compile options, not parameters


def test_compilation_is_byte_for_byte_deterministic(compiled, tmp_path):
    again = compile_pipeline("kubeflow", str(tmp_path / "again.yaml"))
    assert Path(again).read_bytes() == compiled["kubeflow"].read_bytes()


def test_yaml_loads_back_as_a_component(compiled):
    pipeline = components.load_component_from_file(str(compiled["kubeflow"]))
    assert pipeline.name == "textclf-train"


def test_vertex_yaml_builds_a_pipeline_job_offline(compiled):
    """aiplatform.PipelineJob parses the YAML; anonymous credentials, nothing is sent."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name="textclf",
        template_path=str(compiled["vertex"]),
        pipeline_root="gs://bucket/root",
        parameter_values={"source": "gs://bucket/data.csv", "epochs": 1},
        project="demo-project",
        location="europe-west4",
        credentials=AnonymousCredentials(),
        enable_caching=True,
    )
    runtime = job._gca_resource.runtime_config
    assert runtime.gcs_output_directory == "gs://bucket/root"
    assert runtime.parameter_values["epochs"] == 1
