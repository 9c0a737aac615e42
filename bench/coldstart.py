"""Cold start of the model server: process start to ``/v2/health/ready``, before and after, in one run.

    python bench/coldstart.py --model_dir OPTIMIZED_MODEL_DIR [--base cbcf098^1] [--repeats 3]   # make bench-coldstart

Rows, each a fresh process with an empty cache directory (``TEXTCLF_CACHE_DIR``, ``XDG_CACHE_HOME``,
``HF_HOME``, ``MPLCONFIGDIR`` all point into it, as in a new pod), the median of ``--repeats``:

* ``python -c 'import kserve'``: the floor (issue 22's target: ready within 3 s of it);
* **before**: the server of ``--base`` (a commit of this repository, checked out into a temporary
  folder with ``git archive``) with its default ``--backend auto`` (it exported ONNX into the cache,
  probed and timed four backends) and with ``--backend onnx-int8`` and ``torch``;
* **after**: this checkout's server with its default (``auto``: the optimize step's choice in
  ``serving.json``, as the deploy step pins it) and each backend by name.

Columns: seconds to ready (median, min, max), the same minus ``import kserve``, bytes the run left in
the cache directory (after: must be 0) and whether the process had loaded torch (``/proc/PID/maps``).
The model directory must be an optimize step's output (``make run``'s model is one), so that the
after rows find their artifacts; the before rows ignore them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from machine import machine_line  # noqa: E402
from net import free_port, serving_command  # noqa: E402

AFTER = {
    "default (serving.json)": [],
    "onnx-int8": ["--backend", "onnx-int8"],
    "onnx": ["--backend", "onnx"],
    "torch": ["--backend", "torch"],
}
BEFORE = {
    "default (auto: export + probe)": [],
    "onnx-int8": ["--backend", "onnx-int8"],
    "torch": ["--backend", "torch"],
}
CACHE_VARIABLES = ("TEXTCLF_CACHE_DIR", "XDG_CACHE_HOME", "HF_HOME", "MPLCONFIGDIR")


def clean_env(cache: Path, code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.update({name: str(cache / name.lower()) for name in CACHE_VARIABLES})
    return env


def bytes_under(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def import_kserve_seconds(code: Path) -> float:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import kserve"], cwd=code, env=clean_env(Path(cache), code), check=True)
        return time.perf_counter() - started


def loaded_torch(pid: int) -> bool:
    try:
        return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def start_to_ready(code: Path, model_dir: str, flags: list[str], log: Path, timeout: float) -> dict:
    """One cold start: seconds from process start to /v2/health/ready, cache bytes left, torch loaded."""
    port = free_port()
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = Path(cache_dir)
        command = serving_command(model_dir, port, *flags)
        with log.open("wb") as out:
            started = time.perf_counter()
            process = subprocess.Popen(
                command, cwd=code, env=clean_env(cache, code), stdout=out, stderr=subprocess.STDOUT
            )
        try:
            seconds = wait_ready(process, f"http://127.0.0.1:{port}/v2/health/ready", started, timeout, log)
            torch = loaded_torch(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
        return {"seconds": seconds, "cache_bytes": bytes_under(cache), "torch": torch}


def wait_ready(process: subprocess.Popen, url: str, started: float, timeout: float, log: Path) -> float:
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200 and json.loads(response.read()).get("ready"):
                    return time.perf_counter() - started
        except OSError:
            pass
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"not ready after {timeout:.0f}s: {log}")
        time.sleep(0.05)


def checkout(base: str, folder: Path) -> Path:
    """This repository at commit ``base``, unpacked (``git archive``: no worktree to clean up)."""
    archive = subprocess.run(["git", "archive", base], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(name: str, code: Path, model_dir: str, flags: list[str], args) -> dict:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    runs = [
        start_to_ready(code, model_dir, flags, args.work_dir / f"{slug}-{i}.log", args.timeout)
        for i in range(args.repeats)
    ]
    seconds = [run["seconds"] for run in runs]
    result = {
        "median": statistics.median(seconds),
        "min": min(seconds),
        "max": max(seconds),
        "cache_bytes": max(run["cache_bytes"] for run in runs),
        "torch": any(run["torch"] for run in runs),
    }
    print(f"[{name}] {result}", flush=True)
    return result


def table(rows: dict[str, dict], floor: float) -> str:
    lines = [
        "| server | ready s (median) | min | max | minus import kserve | cache bytes written | torch loaded |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    lines.append(f"| `python -c 'import kserve'` | {floor:.1f} | | | | | |")
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['median']:.1f} | {row['min']:.1f} | {row['max']:.1f} | "
            f"{row['median'] - floor:+.1f} | {row['cache_bytes']:,} | {'yes' if row['torch'] else 'no'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="an optimize step's Model directory (with serving.json)")
    parser.add_argument(
        "--base",
        default="cbcf098^1",
        help="commit whose server is 'before' (default: the one before issue 22; empty: no before rows)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a start may take")
    parser.add_argument("--report", type=Path, help="also write the Markdown table here")
    parser.add_argument("--work_dir", type=Path, default=REPO / "build" / "bench-coldstart")
    args = parser.parse_args()
    if not (Path(args.model_dir) / "serving.json").is_file():
        raise SystemExit(f"{args.model_dir} has no serving.json: pass an optimize step's output (make run's model)")
    args.work_dir.mkdir(parents=True, exist_ok=True)

    floor = statistics.median(import_kserve_seconds(REPO) for _ in range(args.repeats))
    print(f"[import kserve] {floor:.2f}s", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.base:
            base = checkout(args.base, Path(folder))
            for name, flags in BEFORE.items():
                rows[f"before ({args.base}): {name}"] = measure(f"before {name}", base, args.model_dir, flags, args)
        for name, flags in AFTER.items():
            rows[f"after: {name}"] = measure(f"after {name}", REPO, args.model_dir, flags, args)
    served = json.loads((Path(args.model_dir) / "serving.json").read_text())["backend"]
    report = (
        f"Machine: {machine_line(libraries=False)}, {date.today().isoformat()}; model {args.model_dir} "
        f"(serving.json: {served}); {args.repeats} starts each, empty cache directory each.\n\n"
        + table(rows, floor)
        + "\n\nTarget (issue 22): the deployed default ready within 3 s of `import kserve`.\n"
    )
    print("\n" + report)
    if args.report:
        args.report.write_text(report)


if __name__ == "__main__":
    main()
