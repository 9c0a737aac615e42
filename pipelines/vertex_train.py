"""The train step on Vertex AI: ``train_op`` as a CustomJob with worker pools set by pipeline values.

google-cloud-pipeline-components (GCPC) wraps ``train_op`` into a component whose task is a
launcher: it sends a CustomJob to Vertex and waits for it. The CustomJob's replicas run
``train_op`` itself (the same training code as every other target); on several replicas,
``textclf.train.launch`` reads Vertex's ``CLUSTER_SPEC`` and starts torchrun across them.

Two things GCPC leaves to us:

* GCPC fixes machine type, GPU count and replicas when the component is made; they are set
  here at the task instead (``worker_pools``), where pipeline parameters and the plan step's
  outputs fill them in at run time.
* Vertex substitutes a pipeline value nested in ``worker_pool_specs`` as a string (GCPC's own
  preview launcher notes it: b/353577594), and the CustomJob API refuses a string replica or GPU
  count. The launcher therefore runs behind :func:`typed_worker_pools`, which turns the counts
  back into integers before GCPC's launcher sends the job.
"""

from __future__ import annotations

import copy
import inspect

from kfp import dsl

from components.train import train_op, vertex_train_plan_op

GCPC_LAUNCHER = "google_cloud_pipeline_components.container.v1.custom_job.launcher"
# Retries of every train task, on either backend (pipeline.py uses it too): a preempted spot node
# fails the task, and the retry resumes from the step checkpoint.
TRAIN_RETRY = {"num_retries": 2, "backoff_duration": "60s"}
# Integer fields of a worker pool that may arrive as strings: (path inside the pool).
INTEGER_FIELDS = (("replica_count",), ("machine_spec", "accelerator_count"), ("disk_spec", "boot_disk_size_gb"))


def typed_worker_pools(payload: str) -> str:
    """The CustomJob payload with each worker pool's counts as integers ("2" -> 2, 1.0 -> 1)."""
    import json

    spec = json.loads(payload, strict=False)
    for pool in spec["job_spec"]["worker_pool_specs"]:
        for path in INTEGER_FIELDS:
            parent = pool
            for key in path[:-1]:
                parent = parent.get(key, {})
            if path[-1] in parent and parent[path[-1]] not in ("", None):
                parent[path[-1]] = int(float(parent[path[-1]]))
    return json.dumps(spec)


def launcher_command() -> list[str]:
    """``python3 -c``: :func:`typed_worker_pools` applied to ``--payload``, then GCPC's launcher,
    in GCPC's own image (the function's source travels in the command, as kfp's components do)."""
    program = "\n".join(
        [
            "import sys",
            f"INTEGER_FIELDS = {INTEGER_FIELDS!r}",
            inspect.getsource(typed_worker_pools),
            "args = sys.argv[1:]",
            "args[args.index('--payload') + 1] = typed_worker_pools(args[args.index('--payload') + 1])",
            f"from {GCPC_LAUNCHER.rsplit('.', 1)[0]} import launcher",
            "launcher.main(args)",
        ]
    )
    return ["python3", "-u", "-c", program]


def vertex_custom_job(accelerator_type: str):
    """``train_op`` as a Vertex CustomJob component, its launcher behind :func:`typed_worker_pools`."""
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component

    custom_job = create_custom_training_job_from_component(
        train_op,
        display_name="textclf-train",
        machine_type="g2-standard-8",
        accelerator_type=accelerator_type,
        restart_job_on_worker_restart=True,  # a preempted replica restarts the job, which resumes from its checkpoint
    )
    container = custom_job.component_spec.implementation.container
    assert container.command[-1] == GCPC_LAUNCHER, container.command  # the launcher this wraps
    container.command = launcher_command()
    return custom_job


def worker_pools(custom_job, machine_type, accelerator_type: str, gpus, worker_replicas=None) -> list[dict]:
    """The CustomJob's pools: its own (container: image, command, arguments) with machine, GPU count
    and replicas from pipeline values; a second pool of ``worker_replicas`` when given."""
    primary = copy.deepcopy(custom_job.component_spec.inputs["worker_pool_specs"].default[0])
    primary["machine_spec"] = {
        "machine_type": machine_type,
        "accelerator_type": accelerator_type,
        "accelerator_count": gpus,
    }
    primary["replica_count"] = 1
    return (
        [primary]
        if worker_replicas is None
        else [primary, {**copy.deepcopy(primary), "replica_count": worker_replicas}]
    )


def train_on_vertex(params: dict, train_args: dict, accelerator_type: str, cpu_step, **artifacts):
    """A CustomJob: the primary replica alone (one node) or with num_nodes - 1 worker replicas."""
    plan = vertex_train_plan_op(
        num_nodes=params["num_nodes"], gpus_per_node=params["gpus_per_node"], accelerator_type=accelerator_type
    )
    cpu_step(plan).set_display_name("train-plan")
    custom_job = vertex_custom_job(accelerator_type)

    def pools(worker_replicas=None):
        return worker_pools(
            custom_job, plan.outputs["machine_type"], accelerator_type, params["gpus_per_node"], worker_replicas
        )

    with dsl.If(params["num_nodes"] == 1, name="one-node"):
        one = custom_job(**train_args, **artifacts, worker_pool_specs=pools())
        one.set_retry(**TRAIN_RETRY).set_display_name("train")
    with dsl.Else(name="several-nodes"):
        several = custom_job(**train_args, **artifacts, worker_pool_specs=pools(plan.outputs["worker_replicas"]))
        several.set_retry(**TRAIN_RETRY).set_display_name("train")
    return dsl.OneOf(one.outputs["model"], several.outputs["model"])
