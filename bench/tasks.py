"""Any task with only ``source`` set: the whole pipeline on TREC-6, SMS spam and IMDB, one after another.

Each task runs ``python -m pipelines run --param source=...`` as a user would (nothing else set, except
what a task lists below), and the table says what the defaults gave: the split's origin, the planned
and run epochs, test accuracy, macro F1, the lowest class recall, the behavioural suites and their pass
rates, the gate's verdict and the minutes. Accuracy is not a speed claim; the minutes are, so compare
them only from a quiet machine.

    .venv/bin/python bench/tasks.py --data ../shared/data                     # all three
    .venv/bin/python bench/tasks.py --data ../shared/data --only trec6,sms_spam
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.imdb import step_seconds  # noqa: E402
from bench.machine import machine_line  # noqa: E402

# name -> (source below --data, extra parameters). IMDB's raw 0/1 labels: the sentiment suites are
# chosen for them too; a 3,000-review sample, one epoch, keeps it to minutes (bench-imdb-cpu is the full run).
TASKS = {
    "trec6": ("trec6/*.csv.gz", {}),
    "sms_spam": ("sms_spam/sms_spam.csv.gz", {}),
    "imdb": ("imdb/train.csv.gz", {"sample_size": 3000, "epochs": 1}),
}


def run_task(name: str, data: Path, work: Path, extra: list[str]) -> dict:
    """One pipeline run; returns what the table shows."""
    source, params = TASKS[name]
    params = {"source": str(data / source), **params}
    runs = work / name
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        "--runs-dir",
        str(runs),
        "--allow-blocked",
        *[a for k, v in params.items() for a in ("--param", f"{k}={v}")],
        *[a for e in extra for a in ("--param", e)],
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"}
    )
    minutes = (time.perf_counter() - started) / 60
    (work / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"{name}: the pipeline failed, log in {work / f'{name}.log'}:\n{done.stderr[-3000:]}")
    found = {
        kind: next(runs.glob(f"*/*/{path}"))
        for kind, path in (
            ("metrics", "evaluate-op/evaluation/metrics.json"),
            ("training", "train-op/model/training.json"),
            ("decision", "gate-op/decision"),
            ("ingest", "ingest-op/data_card"),
        )
    }
    metrics, training = (json.loads(found[k].read_text()) for k in ("metrics", "training"))
    decision = found["decision"].read_text().splitlines()[2]
    card = next(line for line in found["ingest"].read_text().splitlines() if line.startswith("- Splits:"))
    return {
        "task": name,
        "params": params,
        "metrics": metrics,
        "training": training,
        "decision": decision,
        "splits": card[len("- Splits: ") :],
        "minutes": minutes,
        "steps": step_seconds(done.stdout + done.stderr),
    }


def row(result: dict) -> list[str]:
    metrics, training = result["metrics"], result["training"]
    rates = metrics["behaviour"]["pass_rates"]
    sources = sorted({suite["source"] for suite in metrics["behaviour"]["suites"]})
    history = training["history"]
    return [
        result["task"],
        str(len(metrics["labels"])),
        f"{training['settings']['epochs']} / {len(history)}",
        f"{100 * metrics['accuracy']:.2f}%",
        f"{metrics['f1']:.4f}",
        f"{metrics['min_class_recall']:.3f} ({metrics['min_recall_class']})",
        ", ".join(sources),
        " ".join(f"{k} {rates[k]:.3f}" for k in ("mft", "inv", "dir") if k in rates),
        result["decision"].replace("|", "/"),
        f"{training['train_seconds'] / 60:.1f}",
        f"{result['minutes']:.1f}",
    ]


def report(results: list[dict]) -> str:
    header = [
        "task",
        "classes",
        "epochs planned / run",
        "test accuracy",
        "macro F1",
        "lowest class recall",
        "suites",
        "pass rates",
        "gate",
        "train min",
        "pipeline min",
    ]
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: any task with only `source` set (`bench/tasks.py`)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    lines += [""] + [
        f"- {r['task']}: `{' '.join(f'{k}={v}' for k, v in r['params'].items())}`; splits: {r['splits']}; "
        f"validation accuracy per epoch {[round(h['val_accuracy'], 4) for h in r['training']['history']]}"
        for r in results
    ]
    lines += [f"- Machine: {machine_line()}; load average at the end {os.getloadavg()[0]:.1f}.", ""]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data", help="folder with trec6/, sms_spam/ and imdb/")
    parser.add_argument("--only", default=",".join(TASKS), help=f"comma-separated tasks of {', '.join(TASKS)}")
    parser.add_argument("--work", default="", help="keep runs and logs here (default: build/bench-tasks)")
    parser.add_argument(
        "--param", action="append", default=[], help="extra pipeline parameter NAME=VALUE for every task"
    )
    parser.add_argument("--output", default="", help="append the Markdown section to this file")
    args = parser.parse_args(argv)
    work = Path(args.work or REPO / "build" / "bench-tasks")
    work.mkdir(parents=True, exist_ok=True)
    unknown = set(args.only.split(",")) - set(TASKS)
    if unknown:
        raise SystemExit(f"unknown tasks {sorted(unknown)}: choose from {', '.join(TASKS)}")
    results = [run_task(name, Path(args.data).resolve(), work, args.param) for name in args.only.split(",")]
    text = report(results)
    print(text)
    if args.output:
        with open(args.output, "a", encoding="utf-8") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
