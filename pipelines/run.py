"""``python -m pipelines run``: the whole pipeline on this machine through kfp's local runner.

No cluster and no Docker: each step runs as a subprocess of this Python (``use_venv=False``), and
artifacts land under ``runs/<timestamp>/``. Resource and GPU settings are ignored locally.
"""

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines import cloud_common
from pipelines.pipeline import build_pipeline

log = logging.getLogger(__name__)

# The embedded default: generated sample reviews and the packaged MiniLM, small enough for a laptop.
LOCAL_DEFAULTS = {"max_length": 128, "epochs": 1}
RUNS_DIR = "runs"
# Where each result lives under a run: (task, output, file inside the output or "").
OUTPUTS = {
    "data_card": ("ingest-op", "data_card", ""),
    "model": ("train-op", "model", ""),
    "metrics": ("evaluate-op", "evaluation", "metrics.json"),
    "report": ("evaluate-op", "report", ""),
    "gate_decision": ("gate-op", "decision", ""),
    "manifest": ("deploy-op", "manifest", ""),
}


@dataclass
class LocalRun:
    run_dir: Path
    paths: dict[str, Path]

    def summary(self) -> str:
        lines = [f"run: {self.run_dir}"]
        lines += [f"{name:>14}: {self.paths.get(name, '(not produced)')}" for name in OUTPUTS]
        if "manifest" not in self.paths:
            lines.append("the gate did not pass, so nothing was deployed: see the gate decision above")
        return "\n".join(lines)


def parse_params(pairs: list[str]) -> dict:
    """``["epochs=1", "source=data.csv"]`` -> typed pipeline arguments, by the same strict rules as
    ``submit`` and ``schedule`` (types from the pipeline's declaration; unknown names and bad values fail)."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec_inputs = build_pipeline().pipeline_spec.root.input_definitions.parameters
    kinds = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    try:
        return cloud_common.parse_params(pairs, {name: kinds.Name(spec.parameter_type) for name, spec in spec_inputs.items()})
    except cloud_common.CloudCommandError as error:
        raise SystemExit(f"error: {error}") from None


def find_outputs(run_dir: Path) -> dict[str, Path]:
    """The run's artifacts by name (layout of kfp's local runner: <root>/<run>/<task>/<output>)."""
    found = {}
    for name, (task, output, inner) in OUTPUTS.items():
        for path in sorted(run_dir.glob(f"*/{task}/{output}")):
            target = path / inner if inner else path
            if target.exists():
                found[name] = target
    return found


def run_local(params: dict | None = None, runs_dir: str = RUNS_DIR) -> LocalRun:
    """Run the pipeline locally with ``LOCAL_DEFAULTS`` overridden by ``params``."""
    from kfp import local

    run_dir = Path(runs_dir, time.strftime("%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir), raise_on_error=True)
    arguments = {**LOCAL_DEFAULTS, **(params or {})}
    log.info("running the pipeline locally under %s with %s", run_dir, arguments)
    start = time.perf_counter()
    build_pipeline("local")(**arguments)
    log.info("pipeline finished in %.0fs", time.perf_counter() - start)
    return LocalRun(run_dir, find_outputs(run_dir))


def latest_model(runs_dir: str = RUNS_DIR) -> Path:
    """The model directory of the newest local run that produced one."""
    models = sorted(Path(runs_dir).glob("*/*/train-op/model/config.json"))
    if not models:
        raise SystemExit(f"no trained model under {runs_dir}/: run `make run` first")
    return models[-1].parent.resolve()


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser("run", help="run the whole pipeline locally (kfp local runner)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline argument (repeatable)")
    run.add_argument("--runs-dir", default=RUNS_DIR, help="where runs are written")
    run.set_defaults(func=lambda args: print(run_local(parse_params(args.param), args.runs_dir).summary()))

    latest = subparsers.add_parser("latest-model", help="print the model directory of the newest local run")
    latest.add_argument("--runs-dir", default=RUNS_DIR)
    latest.set_defaults(func=lambda args: print(latest_model(args.runs_dir)))
