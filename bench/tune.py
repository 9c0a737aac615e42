"""Tuned against default settings, side by side in one run: the whole pipeline twice on the same data.

    python bench/tune.py --data ../shared/data/trec6 [--n_trials 12] [--param NAME=VALUE ...]

1. ``python -m pipelines run`` with the default training settings;
2. ``python -m pipelines tune`` with the default search space and ``--n_trials`` trials (each scored
   on the validation split only), which trains the final model with the best settings.

Both evaluate the test split once, at the end (the evaluate step), and the test split is never
read by a trial. Prints (and appends to ``--output``) the two test accuracies, their difference,
the step times and the best settings. ``--param`` goes to both pipelines (e.g. ``max_length=64``);
``--tune_param`` to the tuned one only (e.g. ``trial_train_fraction=0.5``). Needs a quiet machine:
the comparison is of accuracy, but the 60-minute budget is of time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.imdb import append_section, step_seconds
from bench.machine import machine_line
from textclf.train.settings import TrainSettings

REPO = Path(__file__).resolve().parents[1]


def run(command: str, params: list[str], work: Path) -> dict:
    """One pipeline (``run`` or ``tune``) in a fresh process; its metrics, training record and step times."""
    runs = work / command
    argv = [
        sys.executable,
        "-m",
        "pipelines",
        command,
        "--runs-dir",
        str(runs),
        "--allow-blocked",
        *[a for p in params for a in ("--param", p)],
    ]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"})
    total = time.perf_counter() - start
    (work / f"{command}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"{command} failed, log in {work / f'{command}.log'}:\n{done.stderr[-3000:]}")
    metrics = json.loads(next(runs.glob("*/*/evaluate-op/evaluation/metrics.json")).read_text())
    training = json.loads(next(runs.glob("*/*/train-op/model/training.json")).read_text())
    return {
        "metrics": metrics,
        "training": training,
        "steps": step_seconds(done.stdout + done.stderr),
        "seconds": total,
    }


def report(default: dict, tuned: dict, options: argparse.Namespace) -> str:
    a, b = default["metrics"]["accuracy"], tuned["metrics"]["accuracy"]
    tuning = tuned["training"]["tuning"]
    steps = sorted(set(default["steps"]) | set(tuned["steps"]))
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: tuned against default settings on {options.data}",
        "",
        f"`python bench/tune.py --data {options.data} --n_trials {options.n_trials}"
        + "".join(f" --param {p}" for p in options.param)
        + "".join(f" --tune_param {p}" for p in options.tune_param)
        + "`; default search space; test split scored once per pipeline, after training.",
        "",
        "| | default settings | tuned |",
        "|---|---:|---:|",
        f"| **test accuracy** | **{100 * a:.2f}%** | **{100 * b:.2f}%** |",
        f"| test macro F1 | {default['metrics']['f1']:.4f} | {tuned['metrics']['f1']:.4f} |",
        *[
            f"| {s} (min) | {default['steps'].get(s, 0) / 60:.1f} | {tuned['steps'].get(s, 0) / 60:.1f} |"
            for s in steps
        ],
        f"| whole pipeline (min) | {default['seconds'] / 60:.1f} | {tuned['seconds'] / 60:.1f} |",
        "",
        f"- Tuned minus default: **{100 * (b - a):+.2f} points** of test accuracy (ratio {b / a:.4f}).",
        f"- Study {tuning['study']}: {tuning['trials']} trials, best #{tuning['best_trial']} with validation "
        f"{tuning['metric']} {tuning['best_value']:.4f}; best settings {tuning['params']}.",
        f"- Machine: {machine_line()}; load average at the end {os.getloadavg()[0]:.1f}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", default="../shared/data/trec6", help="a source the pipeline reads (folder, file, sample:N)"
    )
    parser.add_argument("--n_trials", type=int, default=12)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="to both pipelines")
    parser.add_argument("--tune_param", action="append", default=[], metavar="NAME=VALUE", help="to the tuned one only")
    parser.add_argument("--workdir", default="", help="where runs and logs go (default: a new temporary folder)")
    parser.add_argument("--output", default=str(REPO / "docs" / "benchmarks-tune.md"))
    options = parser.parse_args(argv)
    work = Path(options.workdir or tempfile.mkdtemp(prefix="bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    source = options.data if options.data.startswith("sample:") else str(Path(options.data).resolve())
    # TrainSettings' own epochs, not the 1 epoch `make run` uses on the sample data: "default settings" are
    # the dataclass's.
    common = [f"source={source}", f"epochs={TrainSettings().epochs}", *options.param]
    default = run("run", common, work)
    print(
        f"default settings: test accuracy {default['metrics']['accuracy']:.4f} in {default['seconds'] / 60:.1f} min",
        file=sys.stderr,
    )
    tuned = run("tune", [*common, f"n_trials={options.n_trials}", *options.tune_param], work)
    append_section(
        Path(options.output),
        "# Tuning benchmarks\n\nWritten by `bench/tune.py` (`make bench-tune`); see its docstring.\n",
        report(default, tuned, options),
        work,
    )


if __name__ == "__main__":
    main()
