"""Serving benchmark: the tutorial baseline against ``python -m serving`` with each backend, and
each backend's in-process limit, all in one run.

First the limit: for each backend, a fresh process runs the server's own classifier on the same
texts in batches of 16 sorted by length (bench/inprocess.py): no HTTP, no batcher. Then each
server, on loopback and bounded (texts, requests, seconds): reviews/s at concurrency 1 and 16,
p50/p99 latency, peak RSS (VmHWM), accuracy on the texts it served, its share of the best
in-process rate, and from its /metrics: texts per merged batch, padding, and how busy the
inference worker was. Prints Markdown tables (and writes them with ``--report``).

    .venv/bin/python bench/serve.py --data ../shared/data/imdb/test.csv.gz --model_dir /work/models/imdb-minilm
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from loadgen import LoadResult, run_load  # noqa: E402
from machine import bf16_instructions, cpu_model  # noqa: E402
from net import free_port, serving_command  # noqa: E402
from procmem import peak_rss_mb  # noqa: E402

BACKENDS = {  # name -> inference flags, the same in process and served
    "torch fp32": ["--backend", "torch"],
    "torch bf16": ["--backend", "torch-bf16"],
    "onnx": ["--backend", "onnx"],
    "onnx-int8": ["--backend", "onnx-int8"],
    "auto (default)": [],  # the optimize step's choice (serving.json): what a deployed predictor pins
}
DEFAULT = "auto (default)"
SERVER_VARIANTS = {  # name -> (backend, more python -m serving flags)
    **{f"serving {name}": (name, []) for name in BACKENDS},
    "serving onnx-int8 2 workers x 1 thread": ("onnx-int8", ["--inference_workers", "2", "--threads", "1"]),
    # Passes filled up to max_batch_tokens, as before the grouping by length: what padding costs.
    "serving auto (default) fewest passes": (DEFAULT, ["--pass_cost_tokens", "1000000"]),
}
METRICS = (
    "textclf_batch_size_sum",
    "textclf_batch_size_count",
    "textclf_batch_seconds_sum",
    "textclf_tokens_total",
    "textclf_padded_tokens_total",
)
BASELINE = "baseline pipeline+FastAPI"
BASELINES = {BASELINE: [], BASELINE + " 1 thread": ["--threads", "1"]}  # name -> baseline_server.py flags


@dataclasses.dataclass
class Row:
    name: str
    single: LoadResult
    loaded: LoadResult
    peak_rss_mb: float
    accuracy: float
    note: str = ""
    backend: str = ""  # the BACKENDS entry, for the in-process limit
    server: dict = dataclasses.field(default_factory=dict)  # /metrics deltas over the loaded phase


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log: Path, startup_seconds: float = 300):
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:4]} exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not ready after {startup_seconds}s: {command}") from None
                time.sleep(0.5)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def server_metrics(url: str) -> dict[str, float]:
    """The counters of :data:`METRICS` from a server's /metrics (empty for the baseline)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            values[name] = float(value)
    return values


def measure(name, process, url, make_body, read_label, texts, gold, label_ids, args, note="", metrics_url=None) -> Row:
    print(f"[{name}] warm-up", flush=True)
    run_load(url, texts[:8], 1, make_body, read_label)
    single = run_load(url, texts[: args.single_requests], 1, make_body, read_label, args.time_limit)
    print(f"[{name}] concurrency 1: {single.throughput:.1f}/s, p50 {single.p50_ms:.0f} ms", flush=True)
    before = server_metrics(metrics_url) if metrics_url else {}
    loaded = run_load(url, texts, args.concurrency, make_body, read_label, args.time_limit)
    after = server_metrics(metrics_url) if metrics_url else {}
    print(
        f"[{name}] concurrency {args.concurrency}: {loaded.throughput:.1f}/s, p50 {loaded.p50_ms:.0f} ms, "
        f"{loaded.errors} errors",
        flush=True,
    )
    answers = {**single.answers, **loaded.answers}
    correct = sum(label_ids[label] == gold[index] for index, label in answers.items())
    server = {key: after[key] - before.get(key, 0.0) for key in after}
    server["seconds"] = loaded.seconds
    return Row(
        name, single, loaded, peak_rss_mb(process.pid), 100 * correct / max(1, len(answers)), note, server=server
    )


def optimized_model(model_dir: str, work_dir: Path) -> str:
    """``model_dir`` when the optimize step built its serving artifacts (``serving.json``), else a copy
    optimized here on its probe texts (``python -m textclf.optimize``), which the servers load."""
    if (Path(model_dir) / "serving.json").is_file():
        return model_dir
    out = work_dir / "optimized"
    if not (out / "serving.json").is_file():
        print(f"{model_dir} has no serving artifacts: building them in {out}", flush=True)
        env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        subprocess.run(
            [sys.executable, "-m", "textclf.optimize", "--model_dir", model_dir, "--output_dir", str(out)],
            cwd=REPO,
            env=env,
            check=True,
        )
    return str(out)


def in_process_limits(model_dir: str, texts: list[str], args) -> dict[str, dict]:
    """Backend name -> bench/inprocess.py's result, each in a fresh process."""
    texts_file = args.work_dir / "texts.json"
    texts_file.write_text(json.dumps(texts))
    limits = {}
    for name in args.in_process.split(",") if args.in_process else []:
        command = [
            sys.executable,
            "bench/inprocess.py",
            "--model_dir",
            model_dir,
            "--texts",
            str(texts_file),
            "--batch_size",
            str(args.batch_size),
            "--",
            "--max_length",
            str(args.max_length),
            *BACKENDS[name],
        ]
        env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        log = args.work_dir / f"inprocess_{name.replace(' ', '_')}.log"
        with log.open("wb") as out:
            done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=out)
        if done.returncode != 0:
            raise RuntimeError(f"in-process {name} failed:\n{log.read_text()[-3000:]}")
        limits[name] = json.loads(done.stdout.decode().strip().splitlines()[-1])
        print(
            f"[in process {name}] {limits[name]['reviews_per_s']:.1f} reviews/s ({limits[name]['backend']})", flush=True
        )
    return limits


def limits_table(limits: dict[str, dict], batch_size: int) -> str:
    lines = [
        f"| backend (in process, batches of {batch_size} sorted by length) | serves with | reviews/s | mean tokens |",
        "|---|---|---:|---:|",
    ]
    for name, limit in limits.items():
        lines.append(f"| {name} | {limit['backend']} | {limit['reviews_per_s']:.1f} | {limit['mean_tokens']:.0f} |")
    return "\n".join(lines)


def table(rows: list[Row], concurrency: int, limits: dict[str, dict]) -> str:
    baseline = next((row for row in rows if row.name == BASELINE), None)
    best = max((limit["reviews_per_s"] for limit in limits.values()), default=float("nan"))
    lines = [
        f"| server | reviews/s c=1 | p50 ms c=1 | p99 ms c=1 | reviews/s c={concurrency} | p50 ms c={concurrency} "
        f"| p99 ms c={concurrency} | x baseline c={concurrency} | % of own in-process | % of best in-process "
        f"| texts per batch | padding % | worker busy % | peak RSS MB | accuracy % (texts) | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        speedup = f"{row.loaded.throughput / baseline.loaded.throughput:.2f}" if baseline else ""
        own = own_limit(row, limits).get("reviews_per_s", float("nan"))
        texts = len({**row.single.answers, **row.loaded.answers})
        lines.append(
            f"| {row.name} | {row.single.throughput:.1f} | {row.single.p50_ms:.0f} "
            f"| {row.single.percentile_ms(0.99):.0f} "
            f"| {row.loaded.throughput:.1f} | {row.loaded.p50_ms:.0f} | {row.loaded.percentile_ms(0.99):.0f} "
            f"| {speedup} | {percent(row.loaded.throughput, own)} | {percent(row.loaded.throughput, best)} "
            f"| {ratio(row.server.get('textclf_batch_size_sum'), row.server.get('textclf_batch_size_count'))} "
            f"| {percent(row.server.get('textclf_padded_tokens_total'), row.server.get('textclf_tokens_total'), -100)} "
            f"| {percent(row.server.get('textclf_batch_seconds_sum'), row.server.get('seconds'))} "
            f"| {row.peak_rss_mb:.0f} | {row.accuracy:.2f} ({texts}) | {row.note} |"
        )
    return "\n".join(lines)


def own_limit(row: Row, limits: dict[str, dict]) -> dict:
    """The in-process limit of the backend this server ran: its BACKENDS entry, else (``auto`` measured
    only served) the limit of the backend it resolved to, named in its note."""
    if row.backend in limits:
        return limits[row.backend]
    loaded = row.note.removeprefix("backend ")
    return next((limit for limit in limits.values() if limit["backend"] == loaded), {})


def percent(part, whole, offset: float = 0.0) -> str:
    return f"{100 * part / whole + offset:.0f}" if part is not None and whole and whole == whole else ""


def ratio(part, whole) -> str:
    return f"{part / whole:.1f}" if part is not None and whole else ""


def backend_note(log: Path) -> str:
    """The backend the server said it loaded."""
    for line in log.read_text(errors="replace").splitlines():
        if "Loaded bench from" in line:
            return "backend " + line.split(": backend ", 1)[-1].split(",", 1)[0].strip()
    return ""


def default_verdict(default: Row, limits: dict[str, dict], serving: dict) -> str:
    """Issue 22's target: the deployed default serves at least 90% of the best in-process rate among
    the backends within the agreement rule (serving.json's max_flip_rate of label flips against fp32)."""
    from textclf.inference.choice import qualifies

    passing = {
        name
        for name, entry in serving.get("backends", {}).items()
        if qualifies(entry, serving.get("max_flip_rate", 0.0))
    }
    candidates = {name: limit for name, limit in limits.items() if limit["backend"] in passing}
    if not candidates:
        return "- no in-process limit of a backend within the agreement rule was measured: no default ratio"
    best = max(candidates, key=lambda name: candidates[name]["reviews_per_s"])
    rate = candidates[best]["reviews_per_s"]
    return (
        f"- the default ({serving.get('backend')}, chosen by the optimize step) served {default.loaded.throughput:.1f} "
        f"reviews/s = {percent(default.loaded.throughput, rate)}% of the best in-process rate among the backends "
        f"within the agreement rule ({best}: {rate:.1f}; within: {', '.join(sorted(passing))}); target 90%"
    )


def verdicts(rows: list[Row], limits: dict[str, dict], serving: dict) -> str:
    """The targets of issues 12 (item 5) and 22 (item 7), as measured in this run."""
    lines = []
    served = [row for row in rows if row.name.startswith("serving")]
    if limits and served:
        best_name = max(limits, key=lambda name: limits[name]["reviews_per_s"])
        top = max(served, key=lambda row: row.loaded.throughput)
        lines.append(
            f"- best served {top.name}: {top.loaded.throughput:.1f} reviews/s = "
            f"{percent(top.loaded.throughput, limits[best_name]['reviews_per_s'])}% of the best in-process "
            f"rate ({best_name}, {limits[best_name]['reviews_per_s']:.1f}); target 90%"
        )
    default = next((row for row in rows if row.name == f"serving {DEFAULT}"), None)
    if default and limits:
        lines.append(default_verdict(default, limits, serving))
    baseline = next((row for row in rows if row.name == BASELINE), None)
    if baseline and served:
        quickest = min(served, key=lambda row: row.single.p50_ms)
        lines.append(
            f"- single-request p50: {quickest.name} {quickest.single.p50_ms:.0f} ms vs baseline "
            f"{baseline.single.p50_ms:.0f} ms (target: at most half)"
        )
    return "\n".join(line for line in lines if line)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="csv(.gz) with text and label (int) columns")
    parser.add_argument(
        "--model_dir", required=True, help="fine-tuned Model artifact directory (the same for every server)"
    )
    parser.add_argument("--texts", type=int, default=400, help="texts served at high concurrency (seeded sample)")
    parser.add_argument("--single_requests", type=int, default=60, help="requests at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--time_limit", type=float, default=90.0, help="seconds per load phase, at most")
    parser.add_argument(
        "--variants",
        default=",".join([*BASELINES, *SERVER_VARIANTS]),
        help="comma-separated subset of: " + ", ".join([*BASELINES, *SERVER_VARIANTS]),
    )
    parser.add_argument(
        "--in_process",
        default=",".join(BACKENDS),
        help="backends whose in-process limit is measured first (empty: none): " + ", ".join(BACKENDS),
    )
    parser.add_argument("--batch_size", type=int, default=16, help="texts per in-process batch")
    parser.add_argument("--report", type=Path, help="also write the Markdown table here")
    parser.add_argument("--work_dir", type=Path, default=REPO / "build" / "bench-serve")
    return parser.parse_args()


def serve_variant(name: str, model_dir: str, texts: list[str], gold: list[int], label_ids: dict, args) -> Row:
    """Start one server variant (a baseline or the model server with a backend) and measure it."""
    port = free_port()
    log = args.work_dir / f"{name.replace(' ', '_')}.log"
    if name in BASELINES:
        command = [
            sys.executable,
            "bench/baseline_server.py",
            "--model_dir",
            model_dir,
            "--port",
            str(port),
            "--max_length",
            str(args.max_length),
            *BASELINES[name],
        ]
        with running(command, f"http://127.0.0.1:{port}/docs", log) as process:
            return measure(
                name,
                process,
                f"http://127.0.0.1:{port}/predict",
                lambda t: {"text": t},
                lambda body: body["label"],
                texts,
                gold,
                label_ids,
                args,
            )
    backend, flags = SERVER_VARIANTS[name]
    command = serving_command(
        model_dir,
        port,
        "--enable_latency_logging",
        "false",
        "--max_length",
        str(args.max_length),
        *BACKENDS[backend],
        *flags,
    )
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/v1/models/bench", log) as process:
        row = measure(
            name,
            process,
            f"{base}/v1/models/bench:predict",
            lambda t: {"instances": [t]},
            lambda body: body["predictions"][0]["label"],
            texts,
            gold,
            label_ids,
            args,
            note=backend_note(log),
            metrics_url=f"{base}/metrics",
        )
    row.backend = backend
    return row


def main() -> None:
    args = parse_args()

    import pandas as pd

    frame = pd.read_csv(args.data).sample(frac=1.0, random_state=0).head(args.texts)  # the file is sorted by label
    texts, gold = frame["text"].astype(str).tolist(), frame["label"].astype(int).tolist()
    config = json.loads((Path(args.model_dir) / "config.json").read_text())
    label_ids = {name: int(index) for index, name in config["id2label"].items()}
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"{len(texts)} texts from {args.data}; model {args.model_dir}; labels {label_ids}", flush=True)

    model_dir = optimized_model(args.model_dir, args.work_dir)
    serving = json.loads((Path(model_dir) / "serving.json").read_text())
    limits = in_process_limits(model_dir, texts, args)
    rows = [
        serve_variant(name, model_dir, texts, gold, label_ids, args) for name in filter(None, args.variants.split(","))
    ]

    header = (
        f"Machine: {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}; "
        f"bf16 instructions {bf16_instructions()}), "
        f"{date.today().isoformat()}; max_length {args.max_length}; {len(texts)} texts at c={args.concurrency}, "
        f"{args.single_requests} at c=1."
    )
    report = (
        header
        + "\n\n"
        + limits_table(limits, args.batch_size)
        + "\n\n"
        + table(rows, args.concurrency, limits)
        + "\n\n"
        + verdicts(rows, limits, serving)
        + "\n"
    )
    print("\n" + report)
    if args.report:
        args.report.write_text(report)


if __name__ == "__main__":
    main()
