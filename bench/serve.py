"""Serving benchmark: the tutorial baseline against ``python -m serving`` with each backend.

Everything on loopback and bounded (texts, requests, seconds). For each server, in one run:
reviews/s at concurrency 1 and 16, p50/p99 latency, peak RSS (VmHWM) and accuracy on the texts it
served. Prints a Markdown table (and writes it with ``--report``).

    .venv/bin/python bench/serve.py --data ../shared/data/imdb/test.csv.gz --model_dir /work/models/imdb-minilm
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from loadgen import LoadResult, run_load  # noqa: E402

SERVER_VARIANTS = {  # name -> python -m serving flags
    "serving torch fp32": ["--backend", "torch", "--bf16", "off"],
    "serving torch bf16-auto": ["--backend", "torch", "--bf16", "auto"],
    "serving onnx": ["--backend", "onnx"],
    "serving onnx-int8": ["--backend", "onnx-int8"],
    "serving onnx-int8 2 workers x 1 thread": ["--backend", "onnx-int8", "--inference_workers", "2", "--threads", "1"],
}
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
                    raise TimeoutError(f"not ready after {startup_seconds}s: {command}")
                time.sleep(0.5)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def measure(name, process, url, make_body, read_label, texts, gold, label_ids, args, note="") -> Row:
    print(f"[{name}] warm-up", flush=True)
    run_load(url, texts[:8], 1, make_body, read_label)
    single = run_load(url, texts[: args.single_requests], 1, make_body, read_label, args.time_limit)
    print(f"[{name}] concurrency 1: {single.throughput:.1f}/s, p50 {single.p50_ms:.0f} ms", flush=True)
    loaded = run_load(url, texts, args.concurrency, make_body, read_label, args.time_limit)
    print(f"[{name}] concurrency {args.concurrency}: {loaded.throughput:.1f}/s, p50 {loaded.p50_ms:.0f} ms, "
          f"{loaded.errors} errors", flush=True)
    answers = {**single.answers, **loaded.answers}
    correct = sum(label_ids[label] == gold[index] for index, label in answers.items())
    return Row(name, single, loaded, peak_rss_mb(process.pid), 100 * correct / max(1, len(answers)), note)


def table(rows: list[Row], concurrency: int) -> str:
    baseline = next((row for row in rows if row.name == BASELINE), None)
    lines = [
        f"| server | reviews/s c=1 | p50 ms c=1 | p99 ms c=1 | reviews/s c={concurrency} | p50 ms c={concurrency} "
        f"| p99 ms c={concurrency} | x baseline c={concurrency} | peak RSS MB | accuracy % (texts) | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        speedup = row.loaded.throughput / baseline.loaded.throughput if baseline else float("nan")
        texts = len({**row.single.answers, **row.loaded.answers})
        lines.append(
            f"| {row.name} | {row.single.throughput:.1f} | {row.single.p50_ms:.0f} | {row.single.percentile_ms(0.99):.0f} "
            f"| {row.loaded.throughput:.1f} | {row.loaded.p50_ms:.0f} | {row.loaded.percentile_ms(0.99):.0f} "
            f"| {speedup:.2f} | {row.peak_rss_mb:.0f} | {row.accuracy:.2f} ({texts}) | {row.note} |"
        )
    return "\n".join(lines)


def bf16_note(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if "bf16 on" in line or "bf16 off" in line:
            return line.split("] ", 1)[-1].strip()[:120]
    return ""


def cpu_model() -> str:
    """The CPU's model name (``platform.processor()`` is empty on Linux)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="csv(.gz) with text and label (int) columns")
    parser.add_argument("--model_dir", required=True, help="fine-tuned Model artifact directory (the same for every server)")
    parser.add_argument("--texts", type=int, default=400, help="texts served at high concurrency (seeded sample)")
    parser.add_argument("--single_requests", type=int, default=60, help="requests at concurrency 1")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--time_limit", type=float, default=90.0, help="seconds per load phase, at most")
    parser.add_argument("--variants", default=",".join([*BASELINES, *SERVER_VARIANTS]),
                        help="comma-separated subset of: " + ", ".join([*BASELINES, *SERVER_VARIANTS]))
    parser.add_argument("--report", type=Path, help="also write the Markdown table here")
    parser.add_argument("--work_dir", type=Path, default=REPO / "build" / "bench-serve")
    args = parser.parse_args()

    import pandas as pd

    frame = pd.read_csv(args.data).sample(frac=1.0, random_state=0).head(args.texts)  # the file is sorted by label
    texts, gold = frame["text"].astype(str).tolist(), frame["label"].astype(int).tolist()
    config = json.loads((Path(args.model_dir) / "config.json").read_text())
    label_ids = {name: int(index) for index, name in config["id2label"].items()}
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"{len(texts)} texts from {args.data}; model {args.model_dir}; labels {label_ids}", flush=True)

    rows = []
    for name in args.variants.split(","):
        port = free_port()
        log = args.work_dir / f"{name.replace(' ', '_')}.log"
        if name in BASELINES:
            command = [sys.executable, "bench/baseline_server.py", "--model_dir", args.model_dir, "--port", str(port),
                       "--max_length", str(args.max_length), *BASELINES[name]]
            with running(command, f"http://127.0.0.1:{port}/docs", log) as process:
                rows.append(measure(name, process, f"http://127.0.0.1:{port}/predict", lambda t: {"text": t},
                                    lambda body: body["label"], texts, gold, label_ids, args))
            continue
        command = [sys.executable, "-m", "serving", "--model_dir", args.model_dir, "--model_name", "bench",
                   "--host", "127.0.0.1", "--http_port", str(port), "--enable_grpc", "false",
                   "--enable_latency_logging", "false", "--max_length", str(args.max_length),
                   "--cache_dir", str(args.work_dir / "onnx-cache"), *SERVER_VARIANTS[name]]
        base = f"http://127.0.0.1:{port}"
        with running(command, f"{base}/v1/models/bench", log) as process:
            rows.append(measure(name, process, f"{base}/v1/models/bench:predict", lambda t: {"instances": [t]},
                                lambda body: body["predictions"][0]["label"], texts, gold, label_ids, args,
                                note=bf16_note(log) if "bf16" in name else ""))

    header = (f"Machine: {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}), "
              f"{date.today().isoformat()}; max_length {args.max_length}; {len(texts)} texts at c={args.concurrency}, "
              f"{args.single_requests} at c=1.")
    report = header + "\n\n" + table(rows, args.concurrency) + "\n"
    print("\n" + report)
    if args.report:
        args.report.write_text(report)


if __name__ == "__main__":
    main()
