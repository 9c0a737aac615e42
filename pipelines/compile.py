"""``python -m pipelines compile``: the pipeline as YAML for Kubeflow Pipelines or Vertex AI."""

import argparse
from pathlib import Path

from pipelines.pipeline import DEFAULT_GPU_TYPE, GPU_TYPES, build_pipeline

CLOUD_TARGETS = ("kubeflow", "vertex")


def default_output(target: str, tune: bool = False) -> str:
    return f"build/pipeline-{'tune-' if tune else ''}{target}.yaml"


def compile_pipeline(
    target: str, output: str | None = None, gpu_type: str = DEFAULT_GPU_TYPE, tune: bool = False
) -> str:
    """Compile the pipeline (``tune``: the tune pipeline) for ``target`` to ``output`` (default
    ``build/pipeline-<target>.yaml``, ``build/pipeline-tune-<target>.yaml``).

    The same code and arguments give the same bytes, so the YAML can be committed, diffed and attached
    to releases.
    """
    from kfp import compiler

    output = output or default_output(target, tune)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(target, gpu_type, tune), output)
    return output


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compile", help="compile the pipeline to YAML for a backend")
    parser.add_argument("--target", choices=CLOUD_TARGETS, required=True, help="kubeflow (GKE) or vertex")
    parser.add_argument("--output", help="YAML path (default build/pipeline-<target>.yaml)")
    parser.add_argument(
        "--gpu-type",
        default=DEFAULT_GPU_TYPE,
        choices=sorted(GPU_TYPES),
        help="GPU of the train step: GKE node label value, mapped to the Vertex accelerator name",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="the tune pipeline: a Katib Experiment (kubeflow) or a Vertex "
        "AI tuning job (vertex) before train, which trains with the best settings",
    )
    parser.set_defaults(func=lambda args: print(compile_pipeline(args.target, args.output, args.gpu_type, args.tune)))
