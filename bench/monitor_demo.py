"""Drift monitoring demo (``make monitor-demo``): no alert on in-distribution traffic, alerts on shifted.

Starts on loopback, each as its own process with its real CLI: the model server
(``python -m serving``), the drift monitor (``python -m serving.monitor serve``) and the stand-in
for KServe's logger agent in front of the server (``python -m bench.logger_agent``). Then it
replays in-distribution texts through the agent, prints the drift, replays shifted texts (another
domain's file, or ``gibberish``) and prints the drift again, with the monitor's alert lines.

    .venv/bin/python bench/monitor_demo.py --in_distribution ../shared/data/imdb/test.csv.gz \\
        --shifted ../shared/data/sms_spam/sms_spam.csv.gz [--model_dir DIR] [--profile PROFILE]

Sources are anything the pipeline's ingest reads (a local csv/tsv/parquet/jsonl file, ``sample:``)
or ``gibberish``. Without ``--profile`` the reference profile is built from in-distribution rows
that are not replayed, predicted by the same server: pass ``--profile MODEL_DIR/profile.json`` to
use the one the pipeline wrote, when the in-distribution source is the model's own data.
Without ``--model_dir`` it uses the newest ``make run`` model that passed its gate, else the untrained base model (its
predictions mean nothing, but text drift is measured all the same). Exit status 0 when the demo
shows what it should: no alert before the shift, at least one after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import string
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from net import free_port, serving_args  # noqa: E402

MODEL_NAME = "textclf"
STARTUP_SECONDS = 180  # torch + transformers import on 2 busy cores can be slow


def http_json(url: str, body: dict | None = None, timeout: float = 120.0):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def read_texts(source: str, n: int, seed: int) -> list[str]:
    """``n`` texts of ``source`` in a seeded random order (files may be sorted by label)."""
    if source == "gibberish":
        rng = random.Random(seed)
        word = lambda: "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 12)))  # noqa: E731
        return [" ".join(word() for _ in range(rng.randint(3, 40))) for _ in range(n)]
    from textclf.ingest import IngestSettings, read_source

    texts = [t for t in read_source(IngestSettings(source=source))["text"].tolist() if isinstance(t, str) and t.strip()]
    if len(texts) < n:
        raise SystemExit(f"{source} has {len(texts)} texts, the demo needs {n}")
    random.Random(seed).shuffle(texts)
    return texts[:n]


def resolve_model(model_dir: str | None, work_dir: Path) -> Path:
    if model_dir:
        return Path(model_dir).resolve()
    from pipelines.run import latest_model

    with contextlib.suppress(SystemExit):
        return latest_model(str(REPO / "runs")).path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from textclf.base_model import resolve_base_model

    out = work_dir / "untrained-model"
    if not (out / "config.json").is_file():
        labels = ["negative", "positive"]
        base = resolve_base_model()
        AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=2, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}
        ).save_pretrained(out)
        AutoTokenizer.from_pretrained(base).save_pretrained(out)
    print("  no trained model (make run makes one): using the untrained base model; its scores mean nothing")
    return out


class Processes:
    """Child processes with their logs in ``work_dir``; all stopped (SIGTERM, then kill) on exit."""

    def __init__(self, work_dir: Path):
        self.work_dir, self.running = work_dir, []

    def start(self, name: str, args: list[str], ready_url: str) -> Path:
        log = self.work_dir / f"{name}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.running.append(process)
        started = time.monotonic()
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"{name} exited with {process.returncode}; last lines of {log}:\n{log.read_text()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                urllib.request.urlopen(ready_url, timeout=2).close()
                break
            if time.monotonic() - started > STARTUP_SECONDS:
                raise SystemExit(f"{name} not ready after {STARTUP_SECONDS}s; see {log}")
            time.sleep(0.3)
        print(f"  {name} ready in {time.monotonic() - started:.0f}s (log: {log})")
        return log

    def stop(self) -> None:
        for process in reversed(self.running):
            process.terminate()
        for process in self.running:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def predict(url: str, texts: list[str], batch: int) -> list[dict]:
    """Send ``texts`` in batches; log the rate as it goes."""
    predictions, started = [], time.monotonic()
    for i in range(0, len(texts), batch):
        predictions += http_json(url, {"instances": texts[i : i + batch]})["predictions"]
        done = i + batch
        if done % (batch * 10) == 0 or done >= len(texts):
            elapsed = time.monotonic() - started
            print(f"    {min(done, len(texts))}/{len(texts)} texts, {min(done, len(texts)) / elapsed:.1f} texts/s")
    return predictions


def wait_for_pairs(monitor_url: str, pairs: int, timeout: float = 60.0) -> dict:
    """The monitor's report once it has paired ``pairs`` request/response events (the agent sends them async)."""
    deadline = time.monotonic() + timeout
    while True:
        report = http_json(f"{monitor_url}/drift")
        if report["events"]["accepted"].get("paired", 0) >= pairs or time.monotonic() > deadline:
            return report
        time.sleep(0.2)


def print_table(before: dict, after: dict) -> None:
    def cell(value):
        return "-" if value is None else f"{value:.3f}"

    thresholds = before["thresholds"]
    print(f"\n  {'metric':<30}{'threshold':>10}{'in-distribution':>18}{'shifted':>12}")
    for name in before["metrics"]:
        flags = ["ALERT" if name in r["alerts"] else "" for r in (before, after)]
        print(
            f"  {name:<30}{cell(thresholds.get(name)):>10}{cell(before['metrics'][name]):>12}{flags[0]:>6}"
            f"{cell(after['metrics'][name]):>8}{flags[1]:>6}"
        )
    for key in ("tokens_mean", "ascii_share", "unknown_token_rate"):
        print(
            f"  live {key:<25}{'':>10}{cell(before['live'][key]):>12}{'':>6}{cell(after['live'][key]):>8}"
            f"   (reference {cell(before['reference'][key])})"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in_distribution", default="sample:", help="source of normal traffic (and of the reference)")
    parser.add_argument("--shifted", default="gibberish", help="source of shifted traffic, or 'gibberish'")
    parser.add_argument("--model_dir", default=None, help="Model artifact (default: newest make run model)")
    parser.add_argument("--profile", default=None, help="reference profile (default: built from --in_distribution)")
    parser.add_argument("--reference_size", type=int, default=600)
    parser.add_argument("--window_size", type=int, default=400, help="texts replayed per phase = the monitor's window")
    parser.add_argument("--batch", type=int, default=16, help="texts per predict call")
    parser.add_argument("--work_dir", default=str(REPO / "build" / "monitor-demo"))
    return parser.parse_args(argv)


def reference_profile(
    args, predict_url: str, texts: list[str], labels: list[str], model_dir: Path, work_dir: Path
) -> Path:
    """``--profile``, or one built from ``texts`` scored through the running server (in the demo's folder,
    never in the model)."""
    if args.profile:
        profile_path = Path(args.profile).resolve()
        print(f"  reference profile: {profile_path}")
        return profile_path
    from transformers import AutoTokenizer

    from textclf.profile import build_reference_profile, save_profile

    print(f"  reference profile: {len(texts)} texts of {args.in_distribution} through the server")
    predictions = predict(predict_url, texts, args.batch)
    probabilities = np.array([[p["probabilities"][name] for name in labels] for p in predictions])
    profile = build_reference_profile(
        texts, probabilities.argmax(1).tolist(), labels, probabilities, AutoTokenizer.from_pretrained(model_dir)
    )
    profile_path = save_profile(profile, work_dir)
    print(f"  written to {profile_path}")
    return profile_path


def report(before: dict, after: dict, monitor_log: Path) -> bool:
    """The two phases side by side and the monitor's alert lines; whether only the shifted traffic alerted."""
    print_table(before, after)
    alert_lines = [
        line for line in monitor_log.read_text().splitlines() if "DRIFT ALERT" in line or "drift resolved" in line
    ]
    print(
        "\n  monitor log:\n" + "\n".join(f"    {line}" for line in alert_lines)
        if alert_lines
        else "\n  monitor log: no alert lines"
    )
    ok = not before["alerts"] and bool(after["alerts"])
    print(
        f"\n{'OK' if ok else 'UNEXPECTED'}: {'no alert' if not before['alerts'] else 'alerts'} "
        "on in-distribution traffic, "
        f"{'alerts ' + ', '.join(after['alerts']) if after['alerts'] else 'no alert'} on shifted traffic"
    )
    return ok


def start_monitoring(
    processes: Processes, ports: dict[str, int], model_dir: Path, profile_path: Path, window_size: int
) -> Path:
    """The drift monitor and the logger agent in front of the model server; returns the monitor's log."""
    server_url, monitor_url, agent_url = (f"http://127.0.0.1:{ports[n]}" for n in ("server", "monitor", "agent"))
    monitor_log = processes.start(
        "monitor",
        [
            "serving.monitor",
            "serve",
            "--model_dir",
            str(model_dir),
            "--profile",
            str(profile_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["monitor"]),
            "--window_size",
            str(window_size),
            "--min_samples",
            str(window_size // 2),
        ],
        f"{monitor_url}/healthz",
    )
    processes.start(
        "logger-agent",
        [
            "bench.logger_agent",
            "--upstream",
            server_url,
            "--log_url",
            monitor_url + "/",
            "--port",
            str(ports["agent"]),
            "--inference_service",
            MODEL_NAME,
        ],
        f"{agent_url}/v1/models/{MODEL_NAME}",
    )  # readiness, proxied to the server
    return monitor_log


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work_dir = Path(args.work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    print("[1/5] model")
    model_dir = resolve_model(args.model_dir, work_dir)
    labels = [
        v
        for _, v in sorted(
            json.loads((model_dir / "config.json").read_text())["id2label"].items(), key=lambda kv: int(kv[0])
        )
    ]
    print(f"  {model_dir} (labels {labels})")
    normal = read_texts(args.in_distribution, args.reference_size + args.window_size, seed=0)
    reference_texts, replay_texts = normal[: args.reference_size], normal[args.reference_size :]
    shifted_texts = read_texts(args.shifted, args.window_size, seed=1)

    ports = {name: free_port() for name in ("server", "grpc", "monitor", "agent")}
    server_url, monitor_url, agent_url = (f"http://127.0.0.1:{ports[n]}" for n in ("server", "monitor", "agent"))
    processes = Processes(work_dir)
    try:
        print("[2/5] model server")
        processes.start(
            "model-server",
            serving_args(str(model_dir), ports["server"], model_name=MODEL_NAME, grpc_port=ports["grpc"]),
            f"{server_url}/v1/models/{MODEL_NAME}",
        )
        predict_path = f"/v1/models/{MODEL_NAME}:predict"
        profile_path = reference_profile(args, server_url + predict_path, reference_texts, labels, model_dir, work_dir)

        print("[3/5] monitor and logger agent")
        monitor_log = start_monitoring(processes, ports, model_dir, profile_path, args.window_size)
        calls = -(-args.window_size // args.batch)

        print(f"[4/5] in-distribution traffic: {len(replay_texts)} texts of {args.in_distribution}")
        predict(agent_url + predict_path, replay_texts, args.batch)
        before = wait_for_pairs(monitor_url, calls)
        print(f"  alerts: {before['alerts'] or 'none'}")

        print(f"[5/5] shifted traffic: {len(shifted_texts)} texts of {args.shifted}")
        predict(agent_url + predict_path, shifted_texts, args.batch)
        after = wait_for_pairs(monitor_url, 2 * calls)
        print(f"  alerts: {after['alerts'] or 'none'}")
    finally:
        processes.stop()

    return 0 if report(before, after, monitor_log) else 1


if __name__ == "__main__":
    sys.exit(main())
