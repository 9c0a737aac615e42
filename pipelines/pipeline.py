"""The training pipeline: (source version ->) ingest -> tokenize -> train -> optimize -> evaluate -> gate -> deploy.

One definition, built for three targets. The train step is one op everywhere, whose launcher
decides at run time how it trains (``textclf.train.launch``); the targets differ only in where
that op runs, its platform spec:

* ``local`` (kfp's local runner, which ignores resources): the train task trains, on CPU
  (``gpus_per_node`` > 1 starts that many gloo processes);
* ``kubeflow`` (GKE): with ``num_nodes`` = 1 the train task asks for ``gpus_per_node`` GPUs
  (``nvidia.com/gpu`` limit, the GPU pool's node selector and toleration through kfp-kubernetes)
  and trains on them; with ``num_nodes`` > 1 the same op runs in a small CPU pod, from which its
  launcher submits a Kubeflow Trainer TrainJob and follows it (no GPU waits for the job);
* ``vertex``: the train op runs as a Vertex CustomJob (google-cloud-pipeline-components) whose
  worker pools take the machine type for ``gpus_per_node`` GPUs and ``num_nodes`` replicas
  (Vertex cannot load a kubernetes platform spec).

The pipeline's parameters are the steps' parameters, which are the fields of their settings
dataclasses (``components/step.py``): names, types, defaults and descriptions all come from
there, and each step gets the parameters it declares, by name.
"""

import inspect

from kfp import dsl, kubernetes

from components.deploy import deploy_op
from components.evaluate import evaluate_op
from components.gate import gate_op
from components.ingest import ingest_op
from components.optimize import optimize_op
from components.source_version import source_version_op
from components.tokenize import tokenize_op
from components.train import train_op
from pipelines.vertex_train import TRAIN_RETRY, train_on_vertex
from textclf.gate import PASS
from textclf.images import TRAINER_IMAGE
from textclf.platform.gke import GPU_NODE_LABEL, GPU_TOLERATION, WANDB_SECRET, WANDB_SECRET_KEY
from textclf.platform.trainjob import TrainJobSettings
from textclf.settings import pipeline_fields

PIPELINE_NAME = "textclf-train"
TUNE_PIPELINE_NAME = "textclf-tune"
TARGETS = ("local", "kubeflow", "vertex")
# GKE node label value -> Vertex AI accelerator name, for the GPUs a fine-tune runs on.
GPU_TYPES = {
    "nvidia-tesla-t4": "NVIDIA_TESLA_T4",
    "nvidia-l4": "NVIDIA_L4",
    "nvidia-tesla-a100": "NVIDIA_TESLA_A100",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB",
    "nvidia-h100-80gb": "NVIDIA_H100_80GB",
}
DEFAULT_GPU_TYPE = "nvidia-l4"
# CPU steps' requests; the memory request is also the limit (a pod past it is OOM-killed, not slowed).
# From bench/scale.py (docs/benchmarks.md, "Data at scale"): ingest and tokenize stream their data, so
# their peak does not follow the data size (ingest adds 37 bytes a row: 0.4 GB at 10M rows);
# tokenize's Rust tokenizer uses every core it gets; evaluate holds the model and one batch of texts.
# optimize holds the model three times (PyTorch, ONNX fp32, int8) and times the backends: on as many
# CPUs as a predictor pod gets (DeploySettings.serving_cpu), so that its speeds are the pod's.
STEP_RESOURCES = {
    "source-version": {"cpu": "500m", "memory": "1G"},
    "ingest": {"cpu": "1", "memory": "2G"},
    "tokenize": {"cpu": "4", "memory": "2G"},
    "optimize": {"cpu": "2", "memory": "4G"},
    "evaluate": {"cpu": "2", "memory": "4G"},
    "gate": {"cpu": "500m", "memory": "1G"},
    "deploy": {"cpu": "500m", "memory": "1G"},
}
# The small tasks around training on several nodes: the train op as the TrainJob's launcher (it
# submits and follows it; kubeflow) and the plan step (machine type and worker replicas; vertex).
TRAIN_HELPER_STEP = {"cpu": "500m", "memory": "1G"}
TRAIN_STEP = {"cpu": "4", "memory": "16G"}


def request_gpus(task: dsl.PipelineTask, gpu_type: str, count) -> None:
    """Put a Kubeflow task on ``count`` GPUs of the GPU pool (``count`` may be a pipeline parameter)."""
    task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(count)
    kubernetes.add_node_selector(task, GPU_NODE_LABEL, gpu_type)
    kubernetes.add_toleration(task, **GPU_TOLERATION)


def use_wandb_secret(task: dsl.PipelineTask) -> None:
    """W&B's key from the ``wandb`` secret; no secret: W&B runs offline instead of failing the pod."""
    kubernetes.use_secret_as_env(
        task, secret_name=WANDB_SECRET, secret_key_to_env={WANDB_SECRET_KEY: "WANDB_API_KEY"}, optional=True
    )


def set_resources(task: dsl.PipelineTask, resources: dict) -> dsl.PipelineTask:
    return (
        task.set_cpu_request(resources["cpu"])
        .set_memory_request(resources["memory"])
        .set_memory_limit(resources["memory"])
    )


STEPS = (source_version_op, ingest_op, tokenize_op, train_op, optimize_op, evaluate_op, gate_op, deploy_op)
# Step parameters a target does not offer: only Kubeflow runs TrainJobs, so elsewhere the train op
# keeps the TrainJob settings' defaults instead of showing parameters that change nothing.
TRAINJOB_PARAMETERS = frozenset(pipeline_fields(TrainJobSettings))
NOT_OFFERED = {"local": TRAINJOB_PARAMETERS, "kubeflow": frozenset(), "vertex": TRAINJOB_PARAMETERS}


def steps_for(target: str, tune: bool = False) -> tuple:
    from pipelines.tune import TUNE_STEPS

    return STEPS + (TUNE_STEPS[target] if tune else ())


def step_parameters(op) -> dict:
    """The step's pipeline parameters (name -> kfp input spec): its inputs that are not artifacts
    and that the wiring does not feed (``ingest``'s ``source_version``, the ``wired`` ones of ``step``)."""
    wired = set(op.python_func.wired)
    return {
        name: spec
        for name, spec in op.component_spec.inputs.items()
        if not spec.type.startswith("system.") and name not in wired
    }


def offered_parameters(op, target: str) -> dict:
    """The step's parameters that ``target``'s pipeline offers (see :data:`NOT_OFFERED`)."""
    return {name: spec for name, spec in step_parameters(op).items() if name not in NOT_OFFERED[target]}


def pipeline_parameters(target: str = "local", tune: bool = False) -> list[inspect.Parameter]:
    """One keyword parameter per distinct step parameter; a name several steps share must agree."""
    found: dict[str, tuple] = {}
    for op in steps_for(target, tune):
        for name, spec in offered_parameters(op, target).items():
            declared = (spec.type, spec.default, spec.description)
            if found.setdefault(name, declared) != declared:
                raise TypeError(f"parameter {name!r} differs between steps: {found[name]} vs {declared}")
    types = {"String": str, "Integer": int, "Float": float, "Boolean": bool}
    return [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=types[kind])
        for name, (kind, default, _) in found.items()
    ]


def pipeline_docstring(target: str = "local", tune: bool = False) -> str:
    descriptions = {
        name: spec.description
        for op in steps_for(target, tune)
        for name, spec in offered_parameters(op, target).items()
    }
    lines = [f"    {name}: {text}" for name, text in descriptions.items()]
    tuned = "Tune the training settings, then f" if tune else "F"
    return f"{tuned}ine-tune a Hugging Face text classifier and roll it out as a KServe canary.\n\nArgs:\n" + "\n".join(
        lines
    )


def train_on_kubeflow(call, params: dict, gpu_type: str, **artifacts):
    """The train op in the pod its launch needs (the one choice made at compile time, as a pod
    spec cannot depend on a parameter): one node, a pod on gpus_per_node GPUs of the pool, where it
    trains; several, a small CPU pod, from which its launcher runs the TrainJob."""
    cluster = {"gpu_type": gpu_type, "trainer_image": TRAINER_IMAGE}
    with dsl.If(params["num_nodes"] == 1, name="one-node"):
        pod = call(train_op, **cluster, **artifacts)
        set_resources(pod, TRAIN_STEP).set_retry(**TRAIN_RETRY).set_display_name("train")
        request_gpus(pod, gpu_type, params["gpus_per_node"])
        use_wandb_secret(pod)
    with dsl.Else(name="several-nodes"):
        job = call(train_op, **cluster, **artifacts)
        set_resources(job, TRAIN_HELPER_STEP).set_retry(**TRAIN_RETRY).set_display_name("train-trainjob")
    return dsl.OneOf(pod.outputs["model"], job.outputs["model"])


def build_pipeline(target: str = "local", gpu_type: str = DEFAULT_GPU_TYPE, tune: bool = False):
    """The pipeline function for ``target`` (``local``, ``kubeflow`` or ``vertex``); ``tune`` adds the
    tune step (``pipelines/tune.py``) between tokenize and train, which trains with its best settings."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if gpu_type not in GPU_TYPES:
        raise ValueError(f"gpu_type must be one of {sorted(GPU_TYPES)}, got {gpu_type!r}")

    signature = inspect.Signature(pipeline_parameters(target, tune))

    def textclf_pipeline(*args, **kwargs):
        params = signature.bind(*args, **kwargs).arguments  # kfp passes every parameter, in order

        def call(op, **artifacts):
            return op(**{name: params[name] for name in offered_parameters(op, target)}, **artifacts)

        version = call(source_version_op)
        set_resources(version, STEP_RESOURCES["source-version"]).set_caching_options(False).set_display_name(
            "source-version"
        )
        ingest = call(ingest_op, source_version=version.output)
        set_resources(ingest, STEP_RESOURCES["ingest"]).set_caching_options(True).set_display_name("ingest")
        tokenize = call(tokenize_op, dataset=ingest.outputs["dataset"])
        set_resources(tokenize, STEP_RESOURCES["tokenize"]).set_caching_options(True).set_display_name("tokenize")
        data = {"dataset": ingest.outputs["dataset"], "tokenized": tokenize.outputs["tokenized"]}
        if tune:
            from pipelines.tune import tune_step

            data["tuned_settings"] = tune_step(target, call, params, gpu_type, **data)
        if target == "kubeflow":
            model = train_on_kubeflow(call, params, gpu_type, **data)
        elif target == "vertex":
            train_args = {name: params[name] for name in offered_parameters(train_op, target)}
            model = train_on_vertex(
                params, train_args, GPU_TYPES[gpu_type], lambda task: set_resources(task, TRAIN_HELPER_STEP), **data
            )
        else:
            train = call(train_op, **data)
            set_resources(train, TRAIN_STEP).set_retry(**TRAIN_RETRY).set_display_name("train")
            model = train.outputs["model"]
        # What evaluate scores, the gate passes and deploy serves is one directory: optimize's output.
        optimize = call(optimize_op, model=model, tokenized=tokenize.outputs["tokenized"])
        set_resources(optimize, STEP_RESOURCES["optimize"]).set_display_name("optimize")
        served = optimize.outputs["optimized"]
        evaluate = call(evaluate_op, model=served, tokenized=tokenize.outputs["tokenized"])
        set_resources(evaluate, STEP_RESOURCES["evaluate"]).set_display_name("evaluate")
        gate = call(gate_op, evaluation=evaluate.outputs["evaluation"])
        set_resources(gate, STEP_RESOURCES["gate"]).set_caching_options(False).set_display_name("gate")
        with dsl.If(gate.outputs["Output"] == PASS, name="gate-passed"):
            deploy = call(deploy_op, model=served, evaluation=evaluate.outputs["evaluation"])
            set_resources(deploy, STEP_RESOURCES["deploy"]).set_caching_options(False).set_display_name("deploy")
        if target == "kubeflow":
            for task in (evaluate, gate, deploy):
                use_wandb_secret(task)

    # kfp reads the parameters from the signature and their UI text from the docstring.
    textclf_pipeline.__signature__ = signature
    textclf_pipeline.__doc__ = pipeline_docstring(target, tune)
    if tune:
        return dsl.pipeline(
            name=TUNE_PIPELINE_NAME,
            description="Tune the training settings, fine-tune a text classifier "
            "with the best, evaluate, gate and roll it out on KServe.",
        )(textclf_pipeline)
    return dsl.pipeline(
        name=PIPELINE_NAME, description="Fine-tune a text classifier, evaluate, gate and roll it out on KServe."
    )(textclf_pipeline)
