"""Where the train task's processes run: one process, torchrun on this machine, a Vertex replica, or a TrainJob."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from textclf.platform.trainjob import TrainJobSettings
from textclf.platform.vertex import vertex_machine_type
from textclf.tracking import TrackingSettings
from textclf.train import TrainSettings
from textclf.train.launch import (
    ONE_PROCESS,
    TORCHRUN,
    TRAINJOB,
    VERTEX_POOLS,
    Topology,
    TrainJobTarget,
    TrainLaunchSettings,
    checkpoints_for,
    launch_kind,
    topology,
    torchrun_options,
    train_step,
)


def cluster_spec(pool: str, index: int, workers: int) -> str:
    """Vertex AI's CLUSTER_SPEC as a replica of a CustomJob sees it."""
    cluster = {"workerpool0": ["cmle-training-workerpool0-ab12-0:2222"]}
    if workers:
        cluster["workerpool1"] = [f"cmle-training-workerpool1-ab12-{i}:2222" for i in range(workers)]
    return json.dumps({"cluster": cluster, "environment": "cloud", "task": {"type": pool, "index": index}})


def test_one_machine_runs_standalone_and_vertex_replicas_meet_at_the_primary():
    assert topology(TrainLaunchSettings(), {}) == Topology(1, 1)
    assert torchrun_options(topology(TrainLaunchSettings(gpus_per_node=4), {})) == [
        "--nnodes=1",
        "--nproc_per_node=4",
        "--standalone",
    ]
    launch = TrainLaunchSettings(num_nodes=3, gpus_per_node=2)
    primary = topology(launch, {"CLUSTER_SPEC": cluster_spec("workerpool0", 0, 2)})
    second_worker = topology(launch, {"CLUSTER_SPEC": cluster_spec("workerpool1", 1, 2)})
    assert (primary.node_rank, primary.is_main_node, second_worker.node_rank, second_worker.is_main_node) == (
        0,
        True,
        2,
        False,
    )
    assert torchrun_options(second_worker) == [
        "--nnodes=3",
        "--nproc_per_node=2",
        "--node_rank=2",
        "--master_addr=cmle-training-workerpool0-ab12-0",
        "--master_port=2222",
    ]
    assert topology(TrainLaunchSettings(), {"CLUSTER_SPEC": cluster_spec("workerpool0", 0, 0)}).master is None


@pytest.mark.parametrize(
    "launch, env, message",
    [
        (TrainLaunchSettings(num_nodes=2), {}, "needs a Kubeflow TrainJob or a Vertex CustomJob"),
        (
            TrainLaunchSettings(num_nodes=2),
            {"CLUSTER_SPEC": cluster_spec("workerpool0", 0, 2)},
            "CustomJob has 3 replicas",
        ),
        (TrainLaunchSettings(num_nodes=2), {"CLUSTER_SPEC": cluster_spec("workerpool2", 0, 1)}, "workerpool2"),
    ],
)
def test_a_launch_that_cannot_be_is_named(launch, env, message):
    with pytest.raises(ValueError, match=message):
        topology(launch, env)


IN_A_POD = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}


@pytest.mark.parametrize(
    "nodes, gpus, env, expected",
    [
        (1, 1, {}, ONE_PROCESS),
        (1, 4, {}, TORCHRUN),
        (1, 4, IN_A_POD, TORCHRUN),  # Kubeflow, one node: the task's own GPUs
        (1, 1, IN_A_POD, ONE_PROCESS),
        (2, 4, IN_A_POD, TRAINJOB),  # Kubeflow, several nodes
        (3, 2, {"CLUSTER_SPEC": cluster_spec("workerpool0", 0, 2)}, VERTEX_POOLS),
        (3, 2, {**IN_A_POD, "CLUSTER_SPEC": cluster_spec("workerpool1", 0, 2)}, VERTEX_POOLS),  # a replica is a pod too
        (1, 1, {"CLUSTER_SPEC": cluster_spec("workerpool0", 0, 0)}, VERTEX_POOLS),
    ],
)
def test_the_launch_is_chosen_at_run_time_from_the_settings_and_the_machine(nodes, gpus, env, expected):
    assert launch_kind(TrainLaunchSettings(num_nodes=nodes, gpus_per_node=gpus), env) == expected


def test_several_nodes_outside_kubeflow_and_vertex_are_refused_with_what_would_run_them():
    with pytest.raises(ValueError, match="needs a Kubeflow TrainJob or a Vertex CustomJob"):
        launch_kind(TrainLaunchSettings(num_nodes=2), {})


def test_bad_launch_settings_and_machines_are_named():
    with pytest.raises(ValueError, match="^gpus_per_node must be at least 1, got 0$"):
        TrainLaunchSettings(gpus_per_node=0)
    with pytest.raises(ValueError, match="^eval_batch_size must be at least 1, got 0$"):
        TrainSettings(eval_batch_size=0)
    with pytest.raises(ValueError, match="^checkpoint_every_minutes must not be negative, got -1$"):
        TrainSettings(checkpoint_every_minutes=-1)
    assert vertex_machine_type("NVIDIA_L4", 4) == "g2-standard-48"
    with pytest.raises(ValueError, match=r"carry \[1, 2, 4\] NVIDIA_TESLA_T4"):
        vertex_machine_type("NVIDIA_TESLA_T4", 8)


def test_checkpoints_go_to_cloud_storage_when_the_artifact_is_there():
    assert checkpoints_for("/gcs/b/root/model", "gs://b/root/model") == "gs://b/root/model.checkpoints"
    assert checkpoints_for("/tmp/runs/1/model", "/tmp/runs/1/model") == "/tmp/runs/1/model.checkpoints"
    assert checkpoints_for("/s3/b/model", "s3://b/model") == "s3://b/model.checkpoints"
    # KFP's MinIO artifact URIs are no store's here: the local path, as before
    assert (
        checkpoints_for("/minio/mlpipeline/model", "minio://mlpipeline/model") == "/minio/mlpipeline/model.checkpoints"
    )


def test_the_train_task_starts_torchrun_over_gpus_per_node_processes(tokenized_dir, tiny_model_dir, tmp_path):
    """gpus_per_node=2 on a machine without GPUs: two gloo processes, started by the train op's launcher."""
    model = tmp_path / "model"
    summary = train_step(
        SimpleNamespace(path=tokenized_dir, uri=tokenized_dir),
        SimpleNamespace(path=str(model), uri=str(model)),
        {"labels": ["negative", "positive"]},
        TrainSettings(base_model=tiny_model_dir, epochs=1, batch_size=16, max_steps=2),
        TrainLaunchSettings(gpus_per_node=2),
        TrackingSettings(mode="disabled"),
        TrainJobTarget(TrainJobSettings(), "", "unused"),
        env={},
    )
    assert summary["processes"] == 2 and summary["history"][0]["epoch"] == 1
    assert json.loads((Path(model) / "training.json").read_text()) == summary
