"""``python -m pipelines run``: the whole pipeline on this machine through kfp's local runner.

No cluster and no Docker: each step runs as a subprocess of this Python (``use_venv=False``), and
artifacts land under ``runs/<timestamp>/``. Resource and GPU settings are ignored locally.

Exit status of ``run``: 0 the model passed its gate; :data:`EXIT_STEP_FAILED` a step failed (the
last line names the step and its error); :data:`EXIT_GATE_BLOCKED` the gate blocked the model
(``--allow-blocked``: 0, for schedulers to which a blocked model is a normal outcome).
``latest-model`` prints the newest model whose gate passed (``--any``: the newest model) and says
on stderr which run it took, so that ``$(python -m pipelines latest-model)`` is just the path.
"""

import argparse
import json
import logging
import re
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from pipelines import cloud_common
from pipelines.pipeline import build_pipeline
from textclf.gate import PASS

log = logging.getLogger(__name__)

# The embedded demo (no source given, or sample:N): generated sample reviews and the packaged MiniLM,
# small enough for a laptop in about a minute. A real source gets the pipeline's own defaults (epochs 0:
# enough steps for small data; see TrainSettings.min_train_steps).
DEMO_DEFAULTS = {"max_length": 128, "epochs": 1}
RUNS_DIR = "runs"
EXIT_STEP_FAILED, EXIT_GATE_BLOCKED = 1, 3
NOT_DECIDED = "not decided"  # the gate step did not finish (a step before it failed)
# Where each result lives under a run: (task, output, file inside the output or "").
OUTPUTS = {
    "data_card": ("ingest-op", "data_card", ""),
    "model": ("optimize-op", "optimized", ""),  # the trained model plus its serving artifacts: what deploy serves
    "metrics": ("evaluate-op", "evaluation", "metrics.json"),
    "predictions": ("evaluate-op", "predictions", ""),
    "report": ("evaluate-op", "report", ""),
    "gate_decision": ("gate-op", "decision", ""),
    "manifest": ("deploy-op", "manifest", ""),
}
# What the tune pipeline (python -m pipelines tune) adds.
TUNE_OUTPUTS = {"tuning_report": ("tune-op", "report", "")}
GATE_TASK = OUTPUTS["gate_decision"][0]


def gate_verdict(pipeline_dir: Path) -> tuple[str, str]:
    """(verdict, deciding rule) of a run's gate step, from the outputs kfp's local runner wrote:
    :data:`PASS`, :data:`FAIL` or :data:`NOT_DECIDED`."""
    try:
        output = json.loads((pipeline_dir / GATE_TASK / "executor_output.json").read_text())
    except (OSError, ValueError):
        return NOT_DECIDED, ""
    verdict = output.get("parameterValues", {}).get("Output", NOT_DECIDED)
    decisions = output.get("artifacts", {}).get("decision", {}).get("artifacts", [{}])
    return verdict, (decisions[0].get("metadata", {}).get("deciding_rule", "") if decisions else "")


@dataclass
class LocalRun:
    run_dir: Path
    paths: dict[str, Path]
    outputs: tuple[str, ...] = tuple(OUTPUTS)  # the names the summary lists

    @property
    def gate(self) -> tuple[str, str]:
        """(verdict, deciding rule) of this run's gate (see :func:`gate_verdict`)."""
        pipeline_dirs = sorted(p for p in self.run_dir.glob("*") if p.is_dir())
        return gate_verdict(pipeline_dirs[-1]) if pipeline_dirs else (NOT_DECIDED, "")

    def summary(self) -> str:
        lines = [f"run: {self.run_dir}"]
        lines += [f"{name:>14}: {self.paths.get(name, '(not produced)')}" for name in self.outputs]
        if "manifest" not in self.paths:
            lines.append("the gate did not pass, so nothing was deployed: see the gate decision above")
        return "\n".join(lines)


class StepFailed(Exception):
    """A step of a local run failed; the message names the step and its own error line."""

    def __init__(self, step: str, error: str | None, run_dir: Path):
        detail = error or "it raised no Python exception (killed? out of memory?): see its log above"
        super().__init__(f"step {step} failed: {detail}")
        self.step, self.error, self.run_dir = step, error, run_dir


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# kfp's local runner: "Task 'x' finished with status FAILURE" or "... Inner task failed: 'x' inside 'y'."
_FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'|Task '([^']+)' finished with status FAILURE")


class StepLog:
    """A write-through stand-in for stdout that keeps the last lines of the step running now.

    kfp's local runner prints each step's output (stdout and stderr together) to ``sys.stdout``
    and logs "Executing task ..." there before each step, which is where the kept lines restart.
    """

    def __init__(self, out, max_lines: int = 500):
        self.out, self.lines, self._partial = out, deque(maxlen=max_lines), ""

    def write(self, text: str) -> int:
        self.out.write(text)
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            line = _ANSI.sub("", line)
            if "Executing task '" in line:
                self.lines.clear()
            self.lines.append(line)
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding...: the real stream's
        return getattr(self.out, name)


def exception_line(lines) -> str | None:
    """``SourceError: message`` from the last Python traceback in ``lines`` (the step's own error:
    the exception line is the first after "Traceback" that is indented no deeper than it)."""
    lines = list(lines)
    starts = [i for i, line in enumerate(lines) if line.strip() == "Traceback (most recent call last):"]
    if not starts:
        return None
    header = lines[starts[-1]]
    indent = len(header) - len(header.lstrip())
    for line in lines[starts[-1] + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            kind, sep, message = line.strip().partition(": ")
            if re.fullmatch(r"[\w.]+", kind):
                kind = kind.rsplit(".", 1)[-1]  # textclf.ingest.SourceError -> SourceError
            return f"{kind}{sep}{message}"
    return None


def failed_step(error: RuntimeError) -> str | None:
    """The innermost failed task named in kfp's failure message (``ingest-op`` -> ``ingest``)."""
    match = _FAILED_TASK.search(_ANSI.sub("", str(error)))
    if match is None:
        return None
    task = match.group(1) or match.group(2)
    return task.removesuffix("-op")


def parse_params(pairs: list[str], tune: bool = False) -> dict:
    """``["epochs=1", "source=data.csv"]`` -> typed pipeline arguments, by the same strict rules as
    ``submit`` and ``schedule`` (types from the pipeline's declaration; unknown names and bad values fail)."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec_inputs = build_pipeline(tune=tune).pipeline_spec.root.input_definitions.parameters
    kinds = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
    try:
        return cloud_common.parse_params(
            pairs, {name: kinds.Name(spec.parameter_type) for name, spec in spec_inputs.items()}
        )
    except cloud_common.CloudCommandError as error:
        raise SystemExit(f"error: {error}") from None


def find_outputs(run_dir: Path, outputs: dict = OUTPUTS) -> dict[str, Path]:
    """The run's artifacts by name (layout of kfp's local runner: <root>/<run>/<task>/<output>)."""
    found = {}
    for name, (task, output, inner) in outputs.items():
        for path in sorted(run_dir.glob(f"*/{task}/{output}")):
            target = path / inner if inner else path
            if target.exists():
                found[name] = target
    return found


def local_arguments(params: dict | None) -> dict:
    """The pipeline's arguments for a local run: ``params``, over ``DEMO_DEFAULTS`` for the demo source."""
    params = dict(params or {})
    demo = str(params.get("source", "sample:")).strip().startswith("sample:")
    return {**DEMO_DEFAULTS, **params} if demo else params


def run_local(params: dict | None = None, runs_dir: str = RUNS_DIR, tune: bool = False) -> LocalRun:
    """Run the pipeline (``tune``: the tune pipeline) locally with ``params`` (over ``DEMO_DEFAULTS`` for the
    generated sample).

    Raises:
        StepFailed: a step failed; it names the step and the step's own exception line.
    """
    from kfp import local

    run_dir = Path(runs_dir, time.strftime("%Y%m%d-%H%M%S")).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir), raise_on_error=True)
    arguments = local_arguments(params)
    log.info("running the pipeline locally under %s with %s", run_dir, arguments)
    start = time.perf_counter()
    step_log, stdout = StepLog(sys.stdout), sys.stdout
    sys.stdout = step_log
    try:
        build_pipeline("local", tune=tune)(**arguments)
    except RuntimeError as error:
        step = failed_step(error)
        if step is None:
            raise
        raise StepFailed(step, exception_line(step_log.lines), run_dir) from error
    finally:
        sys.stdout = stdout
    log.info("pipeline finished in %.0fs", time.perf_counter() - start)
    outputs = {**OUTPUTS, **TUNE_OUTPUTS} if tune else OUTPUTS
    return LocalRun(run_dir, find_outputs(run_dir, outputs), tuple(outputs))


@dataclass(frozen=True)
class TrainedModel:
    path: Path
    run_dir: Path
    gate: str  # PASS, FAIL or NOT_DECIDED


def trained_models(runs_dir: str = RUNS_DIR) -> list[TrainedModel]:
    """Every model under ``runs_dir`` with its run and gate verdict, newest first."""
    task, output, _ = OUTPUTS["model"]
    models = sorted(Path(runs_dir).glob(f"*/*/{task}/{output}/config.json"), reverse=True)
    return [
        TrainedModel(config.parent.resolve(), config.parents[3].resolve(), gate_verdict(config.parents[2])[0])
        for config in models
    ]


def latest_model(
    runs_dir: str = RUNS_DIR, any_gate: bool = False, models: list[TrainedModel] | None = None
) -> TrainedModel:
    """The newest model whose gate passed (``any_gate``: the newest model), of ``models`` when given
    (``trained_models(runs_dir)``: the caller has them already).

    Raises:
        SystemExit: no such model, with what there is and what to do.
    """
    models = trained_models(runs_dir) if models is None else models
    if not models:
        raise SystemExit(f"error: no trained model under {runs_dir}/: run `make run` first")
    for model in models:
        if any_gate or model.gate == PASS:
            return model
    newest = models[0]
    raise SystemExit(
        f"error: none of the {len(models)} models under {runs_dir}/ passed its gate (newest: "
        f"{newest.run_dir.name}, gate {newest.gate}); see its gate decision, or pass --any "
        "to take the newest model whatever its gate said"
    )


def run_command(args: argparse.Namespace, tune: bool = False) -> None:
    """``run`` (and ``tune``): the summary on stdout; a failed step or a blocked gate ends as the last line,
    on stderr."""
    try:
        run = run_local(parse_params(args.param, tune), args.runs_dir, tune)
    except StepFailed as failure:
        sys.stdout.flush()
        sys.exit(f"error: {failure}")
    print(run.summary(), flush=True)
    verdict, rule = run.gate
    if verdict != PASS and not args.allow_blocked:
        decision = run.paths.get("gate_decision", "(no gate decision)")
        print(
            f"error: the gate blocked the model ({verdict}{': ' + rule if rule else ''}); see {decision}. "
            "--allow-blocked exits 0 for this",
            file=sys.stderr,
        )
        sys.exit(EXIT_GATE_BLOCKED)


def latest_model_command(args: argparse.Namespace) -> None:
    models = trained_models(args.runs_dir)
    model = latest_model(args.runs_dir, args.any, models)
    skipped = sum(1 for m in models if m.run_dir.name > model.run_dir.name)
    note = f", {skipped} newer run(s) skipped: their gate did not pass" if skipped else ""
    print(f"latest-model: run {model.run_dir.name} (gate {model.gate}{note})", file=sys.stderr)
    print(model.path)


def register(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally (kfp local runner)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="pipeline argument (repeatable)"
    )
    run.add_argument("--runs-dir", default=RUNS_DIR, help="where runs are written")
    run.add_argument(
        "--allow-blocked",
        action="store_true",
        help=f"exit 0 when the gate blocks the model (default: exit {EXIT_GATE_BLOCKED})",
    )
    run.set_defaults(func=run_command)

    latest = subparsers.add_parser(
        "latest-model", help="print the model directory of the newest local run whose gate passed"
    )
    latest.add_argument("--runs-dir", default=RUNS_DIR)
    latest.add_argument("--any", action="store_true", help="the newest model, whatever its gate said")
    latest.set_defaults(func=latest_model_command)
