"""Data-size benchmark: ingest, tokenize, a short train, optimize and evaluate at growing N, each step in its
own process, with wall time, rows/s and peak memory per step (not a timed test).

For each N, an N-row dataset is built from the shared IMDB files (50,000 reviews, in a seeded
order): row i is review i mod 50,000; from the second copy on, its sentences are shuffled (seeded
by i) and a copy number is
appended, so every row is distinct and the lengths stay IMDB's. It is written as ``--shards`` files
(``part-00000.csv.gz``, ...) and ingested through the glob, as a user's export would be. Then, each
in a fresh interpreter:

* ``ingest``   the glob -> Parquet shards + data card;
* ``tokenize`` the shards -> Arrow splits (the base model's tokenizer, ``--max_length``);
* ``raw``      the limit: the fast tokenizer's own ``encode_batch`` on the first ``--raw_texts``
  training texts, batches of 1024, no truncation (and with the tokenizer's truncation);
* ``train``    ``--max_steps`` steps of the train step (plus its validation pass and the reference
  profile, built on the validation split, which it always writes);
* ``optimize`` the optimize step: the serving artifacts built and measured on (at most
  ``max_agreement_texts`` of) the validation split;
* ``evaluate`` the evaluate step on the test split, with the backend the optimize step chose.

Memory: ``peak RSS`` is the step process's own high-water mark (``VmHWM`` in ``/proc/self/status``:
the largest resident set it reached, memory-mapped file pages included; not ``ru_maxrss``, into which
Linux carries the parent's high-water mark across ``vfork`` + ``exec``, so every step would read at
least the harness's ~570 MB); ``tree peak`` samples the summed RSS of the
process and its children every 0.2 s (``bench/procmem.py``), which is what a pod's memory limit sees.
Step rates are rows / wall time of the step process (start-up included) and rows / time inside the
step's function. Results: ``--output`` (Markdown, replaced) and ``<workdir>/results.json``.

    make bench-scale                                          # N = 100k, 300k, 1M
    .venv/bin/python bench/scale.py --data ../shared/data/imdb --sizes 2000 --output /tmp/scale.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import machine  # bench/machine.py and bench/procmem.py (this script's folder is on sys.path)
from procmem import peak_rss_mb, tree_rss_mb
from tiny_model import tiny_model_once

from textclf.settings import setting

REPO = Path(__file__).resolve().parents[1]
STEPS = ("ingest", "tokenize", "raw", "train", "optimize", "evaluate")
LABEL_NAMES = "negative,positive"  # IMDB: label 1 = positive
TINY = "tiny"
STEP_IMPORTS = {
    "ingest": ("pandas", "pyarrow.parquet", "matplotlib.pyplot"),
    "tokenize": ("pyarrow.parquet", "datasets", "transformers.models.auto.tokenization_auto"),
    "raw": ("pyarrow.parquet", "transformers.models.auto.tokenization_auto"),
    "train": (
        "torch",
        "datasets",
        "transformers.models.auto.modeling_auto",
        "transformers.models.auto.tokenization_auto",
    ),
    "optimize": ("torch", "onnxruntime", "transformers.models.auto.modeling_auto"),
    "evaluate": ("torch", "onnxruntime", "datasets", "transformers.models.auto.modeling_auto"),
}

log = logging.getLogger("bench.scale")


@dataclasses.dataclass
class ScaleSettings:
    """What the benchmark runs."""

    data: str = setting("", "Folder with IMDB's train.csv.gz and test.csv.gz (columns id,rating,label,text).")
    sizes: str = setting("100000,300000,1000000", "Comma-separated row counts N.")
    shards: int = setting(8, "Files each N-row dataset is written as.")
    format: str = setting("csv.gz", "Shard format: csv.gz or parquet.", choices=("csv.gz", "parquet"))
    max_length: int = setting(256, "Tokens per text.")
    max_steps: int = setting(20, "Training steps (batch 32): a fixed amount of training whatever N.")
    model: str = setting(
        TINY,
        "Model for train and evaluate: 'tiny' (a 2-layer random BERT with MiniLM's "
        "tokenizer: the data path's cost, not the model's) or a base model such as "
        "offline:all-MiniLM-L6-v2 (scoring 10% of N with it takes hours on a CPU).",
    )
    raw_texts: int = setting(50_000, "Texts the raw tokenizer rate is measured on (the first of the train split).")
    workdir: str = setting(
        "/tmp/textclf-scale", "Datasets, step outputs and results.json (datasets are reused when they exist)."
    )
    output: str = setting("docs/benchmarks-scale.md", "Markdown file the results are written to.")
    steps: str = setting(
        ",".join(STEPS), "Comma-separated steps to run, in this order (a step needs the ones before it)."
    )
    keep_outputs: bool = setting(False, "Keep each N's step outputs (they take about 3x the data on disk).")

    def size_list(self) -> list[int]:
        return [int(s) for s in self.sizes.split(",") if s.strip()]


# ---------------------------------------------------------------- data


def imdb_reviews(data: str) -> list[tuple[str, int]]:
    import pandas as pd

    frames = [pd.read_csv(Path(data) / name, usecols=["text", "label"]) for name in ("train.csv.gz", "test.csv.gz")]
    frame = pd.concat(frames, ignore_index=True)
    reviews = list(zip(frame["text"], frame["label"].astype(int)))
    random.Random(0).shuffle(reviews)  # the files are sorted by label; any N must have both classes
    return reviews


def varied(text: str, row: int, copies: int) -> str:
    """Row ``row``'s text: the review itself for the first copy, then its sentences shuffled (seeded)
    plus the copy number."""
    copy = row // copies
    if copy == 0:
        return text
    sentences = text.split(". ")
    random.Random(row).shuffle(sentences)
    return ". ".join(sentences) + f" (copy {copy})"


def build_dataset(reviews: list[tuple[str, int]], n: int, shards: int, kind: str, folder: Path) -> None:
    """``n`` distinct rows as ``shards`` files in ``folder`` (skipped when already built)."""
    import pandas as pd

    done = folder / "_BUILT"
    if done.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [n * i // shards for i in range(shards + 1)]
    for index, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        rows = []
        for i in range(start, stop):
            text, label = reviews[i % len(reviews)]
            rows.append((varied(text, i, len(reviews)), label, i))
        frame = pd.DataFrame(rows, columns=["text", "label", "id"])
        path = folder / f"part-{index:05d}.{kind}"
        if kind == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 1})
    done.write_text(json.dumps({"rows": n, "shards": shards}))


# ---------------------------------------------------------------- steps (each runs in its own process)


def run_step(step: str, config: dict) -> dict:
    """One step in this process; returns what it measured inside (rows, seconds)."""
    import importlib

    # The step's own libraries, imported before the clock starts: start-up counts in the wall time, not in
    # the step's rate (and nothing more is imported than the step itself needs, so its memory is its own).
    for module in STEP_IMPORTS[step]:
        importlib.import_module(module)
    work, model = Path(config["work"]), config["model"]
    started = time.perf_counter()
    if step == "ingest":
        from textclf.ingest import IngestSettings, ingest

        result = ingest(
            IngestSettings(source=config["source"], label_names=LABEL_NAMES),
            str(work / "dataset"),
            str(work / "card.md"),
        )
        (work / "ingest.json").write_text(json.dumps(result.metadata))
        rows = result.metadata["num_rows"]
    elif step == "tokenize":
        from textclf.tokenize import TokenizeSettings, tokenize

        metadata = tokenize(
            str(work / "dataset"),
            str(work / "tokenized"),
            TokenizeSettings(base_model=model, max_length=config["max_length"]),
        )
        (work / "tokenize.json").write_text(json.dumps(metadata))
        rows = sum(s["rows"] for s in metadata["splits"].values())
    elif step == "raw":
        return raw_rates(work, model, config)
    elif step == "train":
        from textclf.train import TrainSettings, train

        metadata = {
            **json.loads((work / "ingest.json").read_text()),
            **json.loads((work / "tokenize.json").read_text()),
        }
        summary = train(
            str(work / "tokenized"),
            str(work / "model"),
            TrainSettings(base_model=model, epochs=1, max_steps=config["max_steps"]),
            metadata,
        )
        rows = summary["settings"]["batch_size"] * config["max_steps"]
    elif step == "optimize":
        from textclf.optimize import optimize

        result = optimize(str(work / "model"), str(work / "tokenized"), str(work / "optimized"))
        rows = result["backends"]["torch"]["texts"]  # validation texts measured (max_agreement_texts at most)
    else:
        from textclf.evaluate import evaluate

        result = evaluate(str(work / "optimized"), str(work / "tokenized"), str(work / "evaluation"))
        rows = result["examples"]
    return {"rows": rows, "inside_s": time.perf_counter() - started}


def raw_rates(work: Path, model: str, config: dict) -> dict:
    """The fast tokenizer's own batch encode on the first training texts: without and with its truncation."""
    from transformers import AutoTokenizer

    from textclf.base_model import resolve_base_model
    from textclf.data.shards import iter_split

    texts = []
    for batch in iter_split(work / "dataset", "train", ("text",), 1024):
        texts.extend(batch.column("text").to_pylist())
        if len(texts) >= config["raw_texts"]:
            break
    texts = texts[: config["raw_texts"]]
    backend = AutoTokenizer.from_pretrained(resolve_base_model(model)).backend_tokenizer
    rates = {}
    for name, truncate in (("raw", False), ("raw_truncating", True)):
        if truncate:
            backend.enable_truncation(config["max_length"])
        else:
            backend.no_truncation()
        start = time.perf_counter()
        for s in range(0, len(texts), 1024):
            backend.encode_batch(texts[s : s + 1024])
        rates[f"{name}_texts_per_s"] = len(texts) / (time.perf_counter() - start)
    return {"rows": len(texts), **rates}


# ---------------------------------------------------------------- measuring a child process


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its children (what a pod's memory limit counts)."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak_mb = max(self.peak_mb, tree_rss_mb(self.pid))
            self._done.wait(self.every_s)

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure(step: str, config: dict, log_path: Path) -> dict:
    """Run ``step`` in a fresh interpreter: wall time, its own peak RSS and the sampled tree peak."""
    result_path = Path(config["work"]) / f"{step}.result.json"
    command = [sys.executable, __file__, "--step", step, "--config", json.dumps(config), "--result", str(result_path)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    with open(log_path, "w") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        sampler = TreeSampler(child.pid)
        sampler.start()
        child.wait()
        sampler.stop()
    wall = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"step {step} failed ({child.returncode}); see {log_path}:\n" + log_path.read_text()[-3000:])
    inside = json.loads(result_path.read_text())
    return {
        "step": step,
        "wall_s": wall,
        "peak_rss_mb": inside.pop("own_peak_mb"),
        "tree_peak_mb": sampler.peak_mb,
        **inside,
    }


# ---------------------------------------------------------------- report


def load_average() -> float:
    return os.getloadavg()[0]


def report(settings: ScaleSettings, results: list[dict], machine_info: dict, started: str, loads: tuple) -> str:
    lines = [
        f"# Data at scale (`make bench-scale`), {started}",
        "",
        f"Machine: {', '.join(f'{k} {v}' for k, v in machine_info.items())}; 1-minute load average "
        f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end.",
        f"Data: IMDB train+test (50,000 reviews) grown to N rows (sentence shuffles + copy number), "
        f"{settings.shards} {settings.format} shards, read through a glob. max_length {settings.max_length}; "
        f"train {settings.max_steps} steps of 32; model for train/evaluate: {settings.model}.",
        "",
        "| N | step | rows | wall s | rows/s (wall) | rows/s (in step) | peak RSS MB | tree peak MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        if r["step"] == "raw":
            continue
        lines.append(
            f"| {r['n']:,} | {r['step']} | {r['rows']:,} | {r['wall_s']:.1f} | {r['rows'] / r['wall_s']:.0f} "
            f"| {r['rows'] / r['inside_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['tree_peak_mb']:.0f} |"
        )
    lines += [
        "",
        "Tokenizer limit (the fast tokenizer's own `encode_batch`, batches of 1024, same texts, same machine):",
        "",
        "| N | texts | raw texts/s (no truncation) | raw texts/s (its truncation) "
        "| tokenize step texts/s (in step) | step / raw |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in sorted({r["n"] for r in results}):
        raw = next((r for r in results if r["n"] == n and r["step"] == "raw"), None)
        tok = next((r for r in results if r["n"] == n and r["step"] == "tokenize"), None)
        if raw is None or tok is None:
            continue
        step_rate = tok["rows"] / tok["inside_s"]
        lines.append(
            f"| {n:,} | {raw['rows']:,} | {raw['raw_texts_per_s']:.0f} | {raw['raw_truncating_texts_per_s']:.0f} "
            f"| {step_rate:.0f} | {step_rate / raw['raw_texts_per_s']:.2f} |"
        )
    lines += [
        "",
        "Peak RSS: the step process's own high-water mark (`VmHWM`, memory-mapped file pages included). "
        "Tree peak: summed RSS of the step's processes sampled every 0.2 s. rows/s (wall) includes interpreter "
        "start-up and imports; rows/s (in step) is the step function alone, after the libraries are imported. "
        "train: rows = steps x batch (a fixed amount of work), its wall time includes the validation pass and "
        "the reference profile (built on the validation split).",
        f"Command: `{' '.join(sys.argv)}`",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main(argv=None) -> None:
    from transformers import HfArgumentParser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = HfArgumentParser(ScaleSettings, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # internal: run one step here
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    settings, internal = parser.parse_args_into_dataclasses(argv)
    if internal.step:
        result = run_step(internal.step, json.loads(internal.config))
        Path(internal.result).write_text(json.dumps({**result, "own_peak_mb": peak_rss_mb(os.getpid())}))
        return
    if not settings.data:
        raise SystemExit("--data is required: the folder with IMDB's train.csv.gz and test.csv.gz")
    started, load_start = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", load_average()
    root = Path(settings.workdir)
    model = tiny_model_once(root / "tiny-model", LABEL_NAMES.split(",")) if settings.model == TINY else settings.model
    reviews = imdb_reviews(settings.data)
    results = []
    for n in settings.size_list():
        data = root / f"data-{n}-{settings.shards}-{settings.format.replace('.', '')}"
        log.info("building %d rows in %s", n, data)
        build_dataset(reviews, n, settings.shards, settings.format, data)
        work = root / f"run-{n}"
        work.mkdir(parents=True, exist_ok=True)
        config = {
            "work": str(work),
            "source": str(data / f"part-*.{settings.format}"),
            "model": model,
            "max_length": settings.max_length,
            "max_steps": settings.max_steps,
            "raw_texts": settings.raw_texts,
        }
        for step in [s for s in STEPS if s in settings.steps.split(",")]:
            log.info("N=%d: %s", n, step)
            results.append({"n": n, **measure(step, config, work / f"{step}.log")})
            log.info("%s", results[-1])
        if not settings.keep_outputs:
            import shutil

            for name in ("dataset", "tokenized", "model", "model.checkpoints", "evaluation"):
                shutil.rmtree(work / name, ignore_errors=True)
    (root / "results.json").write_text(json.dumps(results, indent=2))
    text = report(settings, results, machine(memory=True), started, (load_start, load_average()))
    Path(settings.output).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
