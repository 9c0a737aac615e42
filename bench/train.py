"""Training benchmark: ``transformers.Trainer`` as tutorials write it vs our train step.

One run, the same base model, max length, epochs, batch size, seed and data subset for both arms:

* ``trainer``: the tutorial recipe. Texts tokenized with ``padding="max_length", truncation=True``,
  ``TrainingArguments`` left at their defaults except ``output_dir``, ``num_train_epochs``,
  ``per_device_train_batch_size`` (= ours) and ``report_to="none"``: fp32, random batches,
  lr 5e-5 with linear decay, no evaluation during training.
* ``ours``: ``textclf.ingest`` -> ``textclf.tokenize`` -> ``textclf.train.train`` with the
  step's defaults (length-grouped batches, dynamic padding, bf16 autocast where the CPU has it,
  fused AdamW, warmup + linear decay, a validation pass each epoch, checkpoints).

Each arm runs in its own interpreter, back to back, so that peak RSS (``ru_maxrss``) is its own.
Both trained models are then scored the same way (``score``: fp32, unpadded, head truncation at
``max_length``) on the same test subset. Prints a Markdown table and writes it to ``--output``.

    .venv/bin/python bench/train.py --data ../shared/data/imdb
    .venv/bin/python bench/train.py --data ../shared/data/imdb --only ours --train_size 4000 --append
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from textclf.settings import setting

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import machine_line  # noqa: E402

ARMS = ("trainer", "ours")
LABEL_NAMES = ["negative", "positive"]  # IMDB: label 1 = positive
SUBSET_FILE = "subset.csv"  # text,label,split: the rows both arms train, validate and test on
RESULT_FILE = "result.json"

log = logging.getLogger("bench.train")


@dataclasses.dataclass
class BenchSettings:
    """What the benchmark runs."""

    data: str = setting("", "Folder with IMDB's train.csv.gz and test.csv.gz (columns id,rating,label,text).")
    train_size: int = setting(1000, "Training reviews, a seeded shuffle of IMDB train.")
    validation_size: int = setting(
        0,
        "Further IMDB train reviews for our step's per-epoch validation (the Trainer "
        "arm evaluates nothing during training, as its defaults do); 0 = a tenth of "
        "train_size, at least 32.",
    )
    test_size: int = setting(1000, "Reviews of IMDB test (a seeded shuffle) both models are scored on.")
    max_length: int = setting(256, "Longest sequence in tokens for training and scoring.")
    epochs: int = setting(1, "Passes over the training reviews.")
    batch_size: int = setting(32, "Examples per step for both arms (our step's default).")
    model: str = setting("offline:all-MiniLM-L6-v2", "Base model for both arms.")
    seed: int = setting(42, "Seed of the subsets and of both trainings.")
    only: str = setting("", "Run one arm (ours or trainer); empty runs both.")
    output: str = setting("docs/benchmarks-train.md", "Markdown file the results are written to.")
    append: bool = setting(False, "Add this run's section to output instead of replacing the file.")
    workdir: str = setting("", "Keep subsets, logs and models here (default: a temporary folder, removed).")

    def __post_init__(self):
        if not self.data:
            raise ValueError("--data is required: the folder with IMDB's train.csv.gz and test.csv.gz")
        if not self.validation_size:
            self.validation_size = max(32, self.train_size // 10)
        for name in ("train_size", "test_size", "max_length", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.only not in ("", *ARMS):
            raise ValueError(f"--only must be one of {ARMS}, got {self.only!r}")

    @property
    def arms(self) -> tuple[str, ...]:
        return (self.only,) if self.only else ARMS


# ---------------------------------------------------------------- data


def write_subset(settings: BenchSettings, out: Path) -> dict[str, int]:
    """Shuffle IMDB train and test with the seed (the files are sorted by label) and keep the subsets."""
    import pandas as pd

    folder = Path(settings.data)
    parts = {}
    for name in ("train", "test"):
        path = folder / f"{name}.csv.gz"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: --data must be the folder with train.csv.gz and test.csv.gz")
        parts[name] = pd.read_csv(path, usecols=["label", "text"]).sample(frac=1, random_state=settings.seed)
    wanted = settings.train_size + settings.validation_size
    if wanted > len(parts["train"]) or settings.test_size > len(parts["test"]):
        raise ValueError(
            f"asked for {wanted} train+validation and {settings.test_size} test reviews; "
            f"{folder} has {len(parts['train'])} and {len(parts['test'])}"
        )
    subset = pd.concat(
        [
            parts["train"][: settings.train_size].assign(split="train"),
            parts["train"][settings.train_size : wanted].assign(split="validation"),
            parts["test"][: settings.test_size].assign(split="test"),
        ]
    )
    subset.to_csv(out, index=False)
    return subset["split"].value_counts().to_dict()


def read_split(work: Path, split: str):
    import pandas as pd

    frame = pd.read_csv(work / SUBSET_FILE)
    return frame[frame["split"] == split]


# ---------------------------------------------------------------- the two arms (each in its own process)


def progress_callback(batch_size: int, every: int = 10):
    """A ``TrainerCallback`` that logs steps with samples/s (the Trainer's own log starts at step 500)."""
    from transformers import TrainerCallback

    class ProgressLog(TrainerCallback):
        start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % every == 0:
                rate = state.global_step * batch_size / (time.perf_counter() - self.start)
                log.info(
                    "trainer step %d/%d | %.1f samples/s | eta %.0fs",
                    state.global_step,
                    state.max_steps,
                    rate,
                    (state.max_steps - state.global_step) * batch_size / rate,
                )

    return ProgressLog()


def train_with_trainer(settings: BenchSettings, work: Path, model_dir: Path) -> dict:
    """The tutorial recipe: pad every text to max_length, Trainer defaults, fp32."""
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

    from textclf.base_model import resolve_base_model

    path = resolve_base_model(settings.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_set = Dataset.from_pandas(read_split(work, "train")[["text", "label"]], preserve_index=False)
    train_set = train_set.map(
        lambda batch: tokenizer(batch["text"], padding="max_length", truncation=True, max_length=settings.max_length),
        batched=True,
    )
    # Seed before the new classifier head is drawn (ours does too): the Trainer seeds only once the model
    # exists; without this, two identical runs of this arm ended 4 points apart (65.9% and 70.2%).
    set_seed(settings.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label=dict(enumerate(LABEL_NAMES)), label2id={n: i for i, n in enumerate(LABEL_NAMES)}
    )
    args = TrainingArguments(
        output_dir=str(work / "trainer-checkpoints"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        seed=settings.seed,
        report_to="none",
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=train_set, callbacks=[progress_callback(settings.batch_size)]
    )
    metrics = trainer.train().metrics
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return {
        "train_loop_s": metrics["train_runtime"],
        "train_samples_per_second": metrics["train_samples_per_second"],
        "precision": "fp32",
    }


def train_with_ours(settings: BenchSettings, work: Path, model_dir: Path) -> dict:
    """The pipeline's ingest -> tokenize -> train functions with the train step's defaults."""
    from textclf.ingest import IngestSettings, ingest
    from textclf.tokenize import TokenizeSettings, tokenize
    from textclf.train import TrainSettings, train

    dataset = work / "ours-dataset"  # a folder of Parquet shards
    ingested = ingest(
        IngestSettings(source=str(work / SUBSET_FILE), label_names=",".join(LABEL_NAMES), seed=settings.seed),
        str(dataset),
    )
    tokenized = tokenize(
        str(dataset),
        str(work / "ours-tokenized"),
        TokenizeSettings(base_model=settings.model, max_length=settings.max_length),
    )
    summary = train(
        str(work / "ours-tokenized"),
        str(model_dir),
        TrainSettings(
            base_model=settings.model, epochs=settings.epochs, batch_size=settings.batch_size, seed=settings.seed
        ),
        {**ingested.metadata, **tokenized},
    )
    return {
        "train_loop_s": summary["train_seconds"],
        "train_samples_per_second": summary["train_samples_per_second"],
        "precision": summary["precision"],
        "epochs_run": len(summary["history"]),
        "mean_train_tokens": tokenized["splits"]["train"]["mean_tokens"],
    }


def score(model_dir: Path, texts: list[str], labels: list[int], max_length: int) -> list[bool]:
    """Whether the model gets each text right: the inference engine in fp32 PyTorch, head truncation at max_length.

    The same function for both arms, so the accuracy difference is the models', not the scoring's.
    """
    from textclf.inference import InferenceSettings, load_engine

    engine = load_engine(model_dir, InferenceSettings(backend="torch", max_length=max_length, truncation="head"))
    start = time.perf_counter()
    predicted = engine.probabilities(texts).argmax(-1).tolist()
    log.info(
        "scored %d test reviews in %.0fs (%.1f reviews/s)",
        len(texts),
        time.perf_counter() - start,
        len(texts) / (time.perf_counter() - start),
    )
    return [p == y for p, y in zip(predicted, labels)]


def run_arm(arm: str, settings: BenchSettings, work: Path) -> None:
    """Train one arm, note its peak RSS before scoring, score it, write ``<work>/<arm>/result.json``."""
    start = time.perf_counter()
    out = work / arm
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    trained = (train_with_ours if arm == "ours" else train_with_trainer)(settings, work, model_dir)
    result = {
        **trained,
        "end_to_end_s": time.perf_counter() - start,  # data prep + tokenize + model load + train + save
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }
    test = read_split(work, "test")
    result["correct"] = score(model_dir, test["text"].tolist(), test["label"].tolist(), settings.max_length)
    (out / RESULT_FILE).write_text(json.dumps(result))


# ---------------------------------------------------------------- report


def accuracy_interval(correct: list[bool]) -> tuple[float, float]:
    """Accuracy and the half-width of its 95% normal interval, in points."""
    n = len(correct)
    p = sum(correct) / n
    return 100 * p, 100 * 1.96 * math.sqrt(p * (1 - p) / n)


def paired_difference(ours: list[bool], theirs: list[bool]) -> tuple[float, float]:
    """Accuracy difference (ours - theirs) in points and its 95% half-width, paired on the same reviews."""
    diffs = [int(a) - int(b) for a, b in zip(ours, theirs)]
    n = len(diffs)
    mean = sum(diffs) / n
    variance = sum((d - mean) ** 2 for d in diffs) / max(n - 1, 1)
    return 100 * mean, 100 * 1.96 * math.sqrt(variance / n)


def report(settings: BenchSettings, results: dict[str, dict], loads: dict[str, tuple], total_s: float) -> str:
    names = {"trainer": "HF Trainer defaults (tutorial)", "ours": "our train step"}
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {' vs '.join(names[a] for a in results)}",
        "",
        "| arm | precision | train samples/s | train loop s | end-to-end s | peak RSS MB | test accuracy % (95% CI) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm, r in results.items():
        acc, half = accuracy_interval(r["correct"])
        lines.append(
            f"| {names[arm]} | {r['precision']} | {r['train_samples_per_second']:.2f} | {r['train_loop_s']:.0f} "
            f"| {r['end_to_end_s']:.0f} | {r['peak_rss_mb']:.0f} | {acc:.2f} (±{half:.2f}) |"
        )
    lines += [
        "",
        "Train loop: the Trainer's `train_runtime`; ours: `train()`'s loop, its per-epoch validation pass and",
        "checkpoints included. End-to-end: the arm's process from start to saved model (data, tokenizing,",
        "model load, training, saving; ours also writes the reference profile on the test split). Peak RSS",
        "is read before scoring. Both models are scored by the same function (fp32, unpadded, head truncation).",
        "",
    ]
    if len(results) == 2:
        ours, theirs = results["ours"], results["trainer"]
        diff, half = paired_difference(ours["correct"], theirs["correct"])
        lines += [
            "- **ours / Trainer, training samples/s: "
            f"{ours['train_samples_per_second'] / theirs['train_samples_per_second']:.2f}x** "
            f"(target >= 3x); end-to-end time, Trainer / ours: {theirs['end_to_end_s'] / ours['end_to_end_s']:.2f}x.",
            f"- **Accuracy, ours - Trainer: {diff:+.2f} points** (paired 95% interval ±{half:.2f}; target >= -0.3).",
        ]
    settings_text = ", ".join(
        f"{k}={v}"
        for k, v in dataclasses.asdict(settings).items()
        if k not in ("output", "append", "workdir", "only", "data")
    )
    lines += [
        f"- Settings: {settings_text}; data {settings.data} (seeded shuffles of IMDB train and test).",
        f"- Machine: {machine_line()}. "
        "Shared with other engineers' processes; the arms ran back to back; 1-minute load average "
        + "; ".join(f"{a}: {b:.1f} before, {e:.1f} after" for a, (b, e) in loads.items())
        + ".",
        f"- Whole benchmark (subsets, both arms, scoring): {total_s / 60:.1f} min.",
        "",
    ]
    if "ours" in results:
        r = results["ours"]
        lines.insert(
            -1,
            f"- Our step: {r.get('epochs_run')} epoch(s) run, mean {r.get('mean_train_tokens')} tokens "
            f"per training review after truncation (Trainer pads every review to {settings.max_length}).",
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv=None) -> tuple[BenchSettings, str]:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(BenchSettings, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # internal: run one arm in this process
    settings, rest = parser.parse_args_into_dataclasses(argv)
    return settings, rest.arm


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings, arm = parse_args(argv)
    if arm:
        run_arm(arm, settings, Path(settings.workdir))
        return

    start = time.perf_counter()
    work = Path(settings.workdir or tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        counts = write_subset(settings, work / SUBSET_FILE)
        log.info("subsets in %s: %s", work, counts)
        results, loads = {}, {}
        for name in settings.arms:
            shutil.rmtree(work / name, ignore_errors=True)
            shutil.rmtree(work / f"{name}.checkpoints", ignore_errors=True)  # no resuming: measure a full run
            before = os.getloadavg()[0]
            log.info("arm %s: starting (load average %.1f)", name, before)
            argv_arm = [
                a
                for k, v in dataclasses.asdict(settings).items()
                if k not in ("append", "only", "workdir")
                for a in (f"--{k}", str(v))
            ]
            subprocess.run(
                [sys.executable, __file__, *argv_arm, "--workdir", str(work), "--arm", name],
                check=True,
                cwd=REPO,
                env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"),
            )
            results[name] = json.loads((work / name / RESULT_FILE).read_text())
            loads[name] = (before, os.getloadavg()[0])
            r = results[name]
            log.info(
                "arm %s: %.2f samples/s, %.0fs end to end, peak RSS %.0f MB, accuracy %.2f%%",
                name,
                r["train_samples_per_second"],
                r["end_to_end_s"],
                r["peak_rss_mb"],
                accuracy_interval(r["correct"])[0],
            )
        text = report(settings, results, loads, time.perf_counter() - start)
    finally:
        if not settings.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(text)
    output = Path(settings.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if settings.append and output.exists():
        output.write_text(output.read_text().rstrip("\n") + "\n\n" + text)
    else:
        output.write_text(
            "# Training benchmark: HF Trainer defaults vs our train step\n\n"
            "Written by `bench/train.py` (`make bench-train`); see its docstring for what each arm does.\n\n" + text
        )
    log.info("wrote %s", output)


if __name__ == "__main__":
    main()
