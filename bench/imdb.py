"""IMDB training benchmarks of the train step: the CPU pipeline, multi-process scaling, GPUs.

    python bench/imdb.py pipeline --data ../shared/data/imdb            # make bench-imdb-cpu
    python bench/imdb.py scaling  --data ../shared/data/imdb            # make bench-train-scaling
    python bench/imdb.py gpu      --data ../shared/data/imdb            # bench/gpu_imdb.sh, make bench-gpu

* ``pipeline``: the whole pipeline (``python -m pipelines run``, kfp's local runner) on IMDB
  train (a seeded shuffle: ``train_size`` reviews to train, ``validation_size`` more to validate)
  scored on IMDB test, with the step times read from the runner's log.
* ``scaling``: the same training run (a subset, ``max_steps`` steps) with 1, 2, ... processes on
  gloo (``torchrun``, ``gpus_per_node`` processes on a machine without GPUs): samples/s of each,
  to show what the distributed path costs on CPU.
* ``gpu``: IMDB at max_length 512 for 3 epochs on one GPU and then on all GPUs of the machine:
  test accuracy, samples/s and model FLOPs utilisation (MFU).

Every size is a flag, so each command also runs in seconds on a tiny random model
(``--model DIR --train_size 64 ...``), which is how they are tested without the data or a GPU.
Results are printed as Markdown and appended to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_line  # noqa: E402 - the same machine line as the other benchmarks
from textclf.settings import DEFAULT_BASE_MODEL  # noqa: E402

LABEL_NAMES = "negative,positive"  # IMDB: label 1 = positive
# Dense bf16 (fp16 on T4) tensor-core peaks per GPU, TFLOP/s, from the vendors' data sheets.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10G": 125.0, "T4": 65.0, "V100": 125.0}
STEP_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (?:Executing task|Task) \W*'([\w-]+)'\W*(finished)?")


@dataclass
class Options:
    data: str = ""
    model: str = DEFAULT_BASE_MODEL
    train_size: int = 23750
    validation_size: int = 1250
    test_size: int = 25000
    max_length: int = 256
    truncation: str = "head_tail"
    epochs: int = 1
    max_steps: int = 0
    batch_size: int = 32
    learning_rate: float = 1e-4
    processes: list[int] = field(default_factory=lambda: [1, 2])
    peak_tflops: float = 0.0
    param: list[str] = field(default_factory=list)  # pipeline mode: more NAME=VALUE pipeline arguments
    workdir: str = ""
    output: str = "docs/benchmarks-imdb.md"

    def train_settings(self, **overrides):
        """The train step's settings for the scaling and GPU runs (no time-based checkpoints: they would
        be timed)."""
        from textclf.train import TrainSettings

        return TrainSettings(
            base_model=self.model,
            epochs=self.epochs,
            max_steps=self.max_steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            checkpoint_every_minutes=0,
            **overrides,
        )


def write_imdb_csv(options: Options, out: Path) -> dict:
    """IMDB train (seeded shuffle: train + validation rows) and test as one CSV with a split column."""
    import pandas as pd

    folder = Path(options.data)
    train = pd.read_csv(folder / "train.csv.gz", usecols=["label", "text"]).sample(frac=1, random_state=42)
    test = pd.read_csv(folder / "test.csv.gz", usecols=["label", "text"]).sample(frac=1, random_state=42)
    wanted = options.train_size + options.validation_size
    if wanted > len(train) or options.test_size > len(test):
        raise SystemExit(
            f"asked for {wanted} train+validation and {options.test_size} test reviews; {folder} has "
            f"{len(train)} and {len(test)}"
        )
    frame = pd.concat(
        [
            train[: options.train_size].assign(split="train"),
            train[options.train_size : wanted].assign(split="validation"),
            test[: options.test_size].assign(split="test"),
        ]
    )
    frame.to_csv(out, index=False)
    return frame["split"].value_counts().to_dict()


def step_seconds(log: str) -> dict[str, float]:
    """Each task's duration from kfp's local runner log ("Executing task 'x'" ... "Task 'x' finished")."""
    started, took = {}, {}
    for line in log.splitlines():
        match = STEP_LINE.match(re.sub(r"\x1b\[\d+m", "", line))
        if not match:
            continue
        clock, task, finished = match.groups()
        h, m, s = clock.split(":")
        t = int(h) * 3600 + int(m) * 60 + float(s)
        if finished and task in started:
            took[task] = (t - started[task]) % 86400
        else:
            started[task] = t
    return took


def run_pipeline(options: Options, work: Path) -> str:
    """The CPU benchmark: the whole pipeline through kfp's local runner."""
    counts = write_imdb_csv(options, work / "imdb.csv")
    params = {
        "source": str(work / "imdb.csv"),
        "label_names": LABEL_NAMES,
        "base_model": options.model,
        "max_length": options.max_length,
        "truncation": options.truncation,
        "epochs": options.epochs,
        "max_steps": options.max_steps,
        "batch_size": options.batch_size,
        "learning_rate": options.learning_rate,
    }
    command = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        "--runs-dir",
        str(work / "runs"),
        "--allow-blocked",
        *[a for k, v in params.items() for a in ("--param", f"{k}={v}")],
        *[a for extra in options.param for a in ("--param", extra)],
    ]
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"}
    )
    total = time.perf_counter() - start
    (work / "pipeline.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"pipeline failed, log in {work / 'pipeline.log'}:\n{done.stderr[-3000:]}")
    metrics = json.loads(next((work / "runs").glob("*/*/evaluate-op/evaluation/metrics.json")).read_text())
    training = json.loads(next((work / "runs").glob("*/*/train-op/model/training.json")).read_text())
    steps = step_seconds(done.stdout + done.stderr)
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: the pipeline on IMDB, CPU",
        "",
        f"{counts.get('train')} train / {counts.get('validation')} validation reviews (IMDB train), "
        f"{counts.get('test')} test reviews (IMDB test); {options.truncation}, max_length {options.max_length}, "
        f"epochs {options.epochs}, max_steps {options.max_steps or 'none'}, batch {options.batch_size}, "
        f"learning rate {options.learning_rate}, {options.model}"
        + (f", {' '.join(options.param)}" if options.param else "")
        + ".",
        "",
        "| step | minutes |",
        "| --- | ---: |",
    ]
    lines += [f"| {task} | {seconds / 60:.1f} |" for task, seconds in steps.items()]
    lines += [
        f"| **whole pipeline** | **{total / 60:.1f}** |",
        "",
        f"- **Test accuracy {100 * metrics['accuracy']:.2f}%** "
        f"(macro F1 {metrics['f1']:.4f}, loss {metrics['loss']:.4f}), "
        f"scored with the serving backend {metrics.get('serving', {}).get('backend')}: "
        f"{metrics.get('serving', {}).get('reason')}.",
        f"- Training loop {training['train_seconds'] / 60:.1f} min at {training['train_samples_per_second']:.1f} "
        f"samples/s ({training.get('train_tokens_per_second') or 0:.0f} tokens/s), precision {training['precision']}, "
        f"{len(training['history'])} epoch(s): "
        f"{[round(h['val_accuracy'], 4) for h in training['history']]} validation accuracy.",
        f"- Machine: {machine_line()}; load average at the end {os.getloadavg()[0]:.1f}.",
        "",
    ]
    return "\n".join(lines)


def tokenize_subset(options: Options, work: Path) -> tuple[str, dict]:
    """Ingest and tokenize the IMDB subset once (scaling and GPU runs train on it several times)."""
    from textclf.ingest import IngestSettings, ingest
    from textclf.tokenize import TokenizeSettings, tokenize

    write_imdb_csv(options, work / "imdb.csv")
    ingested = ingest(
        IngestSettings(source=str(work / "imdb.csv"), label_names=LABEL_NAMES), str(work / "data.parquet")
    )
    tokenized = tokenize(
        str(work / "data.parquet"),
        str(work / "tokenized"),
        TokenizeSettings(base_model=options.model, max_length=options.max_length, truncation=options.truncation),
    )
    return str(work / "tokenized"), {**ingested.metadata, **tokenized}


def train_with(processes: int, options: Options, tokenized: str, metadata: dict, out: Path, **settings) -> dict:
    """One training run with ``processes`` data-parallel processes (torchrun when more than one)."""
    from textclf.tracking import TrackingSettings
    from textclf.train.launch import TrainLaunchSettings, train_in_task

    train_settings = options.train_settings(**settings)
    start = time.perf_counter()
    summary = train_in_task(
        tokenized,
        str(out),
        str(out),
        metadata,
        train_settings,
        TrainLaunchSettings(gpus_per_node=processes),
        TrackingSettings(mode="disabled"),
        env={},
    )
    return {**summary, "process_seconds": time.perf_counter() - start}


def torchrun(processes: int, options: Options, tokenized: str, metadata: dict, out: Path, threads: int = 0) -> dict:
    """One training run as ``torchrun --nproc_per_node N -m textclf.train`` (also for N = 1, so
    that every count starts the same way: a fresh process per rank)."""
    from textclf.tracking import TrackingSettings
    from textclf.train.launch import Topology, cli_arguments, torchrun_options

    settings = options.train_settings()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *torchrun_options(Topology(1, processes)),
        "-m",
        "textclf.train",
        *cli_arguments(
            tokenized, str(out), metadata, str(out) + ".checkpoints", settings, TrackingSettings(mode="disabled")
        ),
    ]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    subprocess.run(command, check=True, cwd=REPO, env=env)
    return json.loads((out / "training.json").read_text())


def run_scaling(options: Options, work: Path) -> str:
    """samples/s of the same run (same per-process batch) with 1, 2, ... gloo processes."""
    tokenized, metadata = tokenize_subset(options, work)
    # (processes, threads per process; 0: torch's default, every core): one process on every core is
    # the plain path; one process on one thread is what each of N processes gets, so N processes
    # against it show what the distributed path (gloo all-reduce, reduced metrics) costs.
    runs = [(1, 0), (1, 1)] + [(n, 1) for n in options.processes if n > 1]
    rows = [
        (f"{n} x {t or 'all'} thread(s)", torchrun(n, options, tokenized, metadata, work / f"model-{n}-{t}", t))
        for n, t in runs
    ]
    base = rows[1][1]["train_samples_per_second"]
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: data-parallel scaling on CPU (gloo)",
        "",
        f"{options.train_size} IMDB reviews, max_length {options.max_length}, batch {options.batch_size} per process, "
        f"max_steps {options.max_steps or 'none'}, {options.model}; each count started by torchrun, which "
        "sets OMP_NUM_THREADS=1 per process for 2+ processes (one process uses every core). With a fixed "
        "per-process batch, N processes train N times the texts per step.",
        "",
        "| processes x threads | samples/s | x one process on one thread | train loop s | tokens/s |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for processes, s in rows:
        lines.append(
            f"| {processes} | {s['train_samples_per_second']:.2f} | {s['train_samples_per_second'] / base:.2f} "
            f"| {s['train_seconds']:.0f} | {s.get('train_tokens_per_second') or 0:.0f} |"
        )
    lines += ["", f"- Machine: {machine_line()}.", ""]
    return "\n".join(lines)


def model_flops_per_token(model_dir: str, seq_len: float) -> float:
    """Training FLOPs per token: 6 x non-embedding parameters + attention's 12 x layers x width x sequence
    (the usual estimate, Kaplan et al. 2020 / PaLM appendix B; backward = 2 x forward)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    params = sum(p.numel() for name, p in model.named_parameters() if "embeddings" not in name)
    config = AutoConfig.from_pretrained(model_dir)
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_flops(options: Options, gpus: int) -> float | None:
    import torch

    if options.peak_tflops:
        return options.peak_tflops * 1e12 * gpus
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((tflops * 1e12 * gpus for key, tflops in PEAK_TFLOPS.items() if key in name), None)


def test_accuracy(model_dir: Path, tokenized: str) -> float:
    from textclf.evaluate import EvaluateSettings, evaluate

    return evaluate(
        str(model_dir), tokenized, str(model_dir.parent / f"{model_dir.name}-evaluation"), EvaluateSettings()
    )["accuracy"]


def run_gpu(options: Options, work: Path) -> str:
    """Full IMDB at max_length 512, 3 epochs: on one GPU, then on all of them."""
    import torch

    tokenized, metadata = tokenize_subset(options, work)
    gpus = torch.cuda.device_count()
    counts = [1] + ([gpus] if gpus > 1 else [])
    if not gpus:
        counts = options.processes  # no GPU: CPU processes, to check the script
    mean_tokens = metadata["splits"]["train"]["mean_tokens"]
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: IMDB on {'GPU' if gpus else 'CPU (script check)'}",
        "",
        f"{options.train_size} train / {options.validation_size} validation / {options.test_size} test reviews, "
        f"max_length {options.max_length} ({options.truncation}, mean {mean_tokens} tokens), {options.epochs} epochs, "
        f"batch {options.batch_size} per process, {options.model}.",
        "",
        "| processes | test accuracy % | samples/s | train minutes | MFU |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in counts:
        out = work / f"model-{n}"
        summary = train_with(
            n, options, tokenized, metadata, out, torch_compile=bool(gpus), dataloader_workers=4 if gpus else 2
        )
        accuracy = test_accuracy(out, tokenized)
        tokens_per_second = summary.get("train_tokens_per_second") or summary["train_samples_per_second"] * mean_tokens
        peak = peak_flops(options, n)
        mfu = (
            f"{tokens_per_second * model_flops_per_token(str(out), mean_tokens) / peak:.1%}"
            if peak
            else "n/a (no peak known)"
        )
        lines.append(
            f"| {n} | {100 * accuracy:.2f} | {summary['train_samples_per_second']:.1f} "
            f"| {summary['train_seconds'] / 60:.1f} | {mfu} |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"- Machine: {machine_line()}" + (f", {gpus} x {torch.cuda.get_device_name(0)}" if gpus else ", no GPU") + ".",
        "",
    ]
    return "\n".join(lines)


def parse(argv=None) -> tuple[str, Options]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("pipeline", "scaling", "gpu"))
    defaults = Options()
    for name, value in asdict(defaults).items():
        if name == "param":
            parser.add_argument(
                "--param",
                action="append",
                default=[],
                metavar="NAME=VALUE",
                help="pipeline mode: another pipeline argument (repeatable), e.g. torch_compile=true",
            )
        elif isinstance(value, list):
            parser.add_argument(f"--{name}", type=int, nargs="+", default=value)
        else:
            parser.add_argument(f"--{name}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    mode = args.pop("mode")
    if not args["data"]:
        parser.error("--data is required: the folder with IMDB's train.csv.gz and test.csv.gz")
    return mode, Options(**args)


def append_section(output: Path, title: str, text: str, work: Path) -> None:
    """Print a run's section and append it to ``output`` (made with ``title`` when new)."""
    print(text)
    if not output.exists():
        output.write_text(title)
    output.write_text(output.read_text().rstrip("\n") + "\n\n" + text)
    print(f"appended to {output}; work files in {work}", file=sys.stderr)


def main(argv=None) -> None:
    mode, options = parse(argv)
    work = Path(options.workdir or tempfile.mkdtemp(prefix=f"bench-imdb-{mode}-"))
    work.mkdir(parents=True, exist_ok=True)
    run = {"pipeline": run_pipeline, "scaling": run_scaling, "gpu": run_gpu}[mode]
    append_section(
        Path(options.output),
        "# IMDB benchmarks of the train step\n\nWritten by `bench/imdb.py`; see its docstring.\n",
        run(options, work),
        work,
    )


if __name__ == "__main__":
    main()
