"""Remote-ingest benchmark: the same N-row export ingested from local disk, ``s3://`` and ``gs://``, side by side
(not a timed test).

Ingest streams every shard through ``textclf.platform.storage`` (a remote one 8 MB at a time, never
downloaded whole), so its memory must not grow with N or with where the data lives. For each N the
dataset of ``bench/scale.py`` (IMDB rows, ``--shards`` gzipped CSV files) is uploaded to moto's S3
server and gcp-storage-emulator, both on loopback in this harness process (their memory is not the
ingest's), and ingested through the glob from each store, each run in a fresh interpreter. Reported
per run: wall time, rows/s, the ingest process's peak RSS (``VmHWM``) and both as a ratio to the local
run of the same N. Loopback emulators measure the client's overhead (requests, read-ahead, parsing from
a file object), not a cloud network; the emulators themselves are slower than GCS or S3 per request.

    make bench-storage                                              # N = 100k, 400k
    .venv/bin/python bench/storage.py --data ../shared/data/imdb --sizes 2000 --output /tmp/storage.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from machine import machine  # bench/ is on sys.path when this script runs
from net import free_port
from procmem import peak_rss_mb
from scale import build_dataset, imdb_reviews

from textclf.settings import setting

REPO = Path(__file__).resolve().parents[1]
STORES = ("local", "s3", "gs")
log = logging.getLogger("bench.storage")


@dataclasses.dataclass
class StorageBenchSettings:
    """What the benchmark runs."""

    data: str = setting("", "Folder with IMDB's train.csv.gz and test.csv.gz (columns id,rating,label,text).")
    sizes: str = setting("100000,400000", "Comma-separated row counts N.")
    shards: int = setting(8, "Files each N-row dataset is written as (gzipped CSV).")
    stores: str = setting(",".join(STORES), "Comma-separated stores to ingest from: local, s3, gs.")
    workdir: str = setting("/tmp/textclf-storage-bench", "Datasets and ingest outputs (datasets are reused).")
    output: str = setting("build/benchmarks-storage.md", "Markdown file the results are written to.")


def start_emulators() -> tuple[dict, list]:
    """moto's S3 and gcp-storage-emulator on loopback; the environment that points the stores' clients there."""
    from gcp_storage_emulator.server import create_server
    from moto.server import ThreadedMotoServer

    s3_port, gcs_port = free_port(), free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    gcs = create_server("127.0.0.1", gcs_port, in_memory=True)
    s3.start()
    gcs.start()
    env = {
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{gcs_port}",
        "GOOGLE_CLOUD_PROJECT": "bench",
    }
    os.environ.update(env)
    return env, [s3, gcs]


def upload(folder: Path, n: int) -> dict[str, str]:
    """The dataset's glob in every store (made with the stores' own clients, not the module under test)."""
    import boto3
    from google.cloud import storage as gcs

    bucket = f"bench-{n}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    gcs_bucket = gcs.Client().create_bucket(bucket)
    for path in sorted(folder.glob("part-*.csv.gz")):
        boto3.client("s3").upload_file(str(path), bucket, f"export/{path.name}")
        gcs_bucket.blob(f"export/{path.name}").upload_from_filename(str(path))
    return {
        "local": str(folder / "part-*.csv.gz"),
        "s3": f"s3://{bucket}/export/part-*.csv.gz",
        "gs": f"gs://{bucket}/export/part-*.csv.gz",
    }


def run_ingest(source: str, work: str) -> dict:
    """One ingest in this process (the child); what it measured."""
    import pandas  # noqa: F401 - imported before the clock, as bench/scale.py does

    from textclf.ingest import IngestSettings, ingest

    started = time.perf_counter()
    result = ingest(IngestSettings(source=source, label_names="negative,positive"), f"{work}/dataset")
    return {
        "rows": result.metadata["num_rows"],
        "fingerprint": result.metadata["fingerprint"],
        "inside_s": time.perf_counter() - started,
    }


def measure(store: str, source: str, work: Path, env: dict) -> dict:
    result_file = work / f"{store}.json"
    config = json.dumps({"source": source, "work": str(work / store)})
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--step", config, "--result", str(result_file)],
        check=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=3600,
    )
    return {"store": store, "wall_s": time.perf_counter() - started, **json.loads(result_file.read_text())}


def report(results: list[dict], info: dict, started: str) -> str:
    lines = [
        "# Remote ingest (`make bench-storage`, issue 21)\n",
        f"{started}; {info}\n",
        "| N | store | wall s | rows/s (inside) | peak RSS MB | time vs local | memory vs local | same fingerprint |",
        "|---|---|---|---|---|---|---|---|",
    ]
    local = {r["n"]: r for r in results if r["store"] == "local"}
    for r in results:
        base = local.get(r["n"])

        def ratio(key: str, r: dict = r, base: dict | None = base) -> str:
            return f"{r[key] / base[key]:.2f}x" if base else "n/a"

        same = "yes" if base and base["fingerprint"] == r["fingerprint"] else ("-" if not base else "NO")
        lines.append(
            f"| {r['n']:,} | {r['store']} | {r['wall_s']:.1f} | {r['rows'] / r['inside_s']:,.0f} | "
            f"{r['own_peak_mb']:.0f} | {ratio('wall_s')} | {ratio('own_peak_mb')} | {same} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    from transformers import HfArgumentParser

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = HfArgumentParser(
        StorageBenchSettings, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one ingest here, with this JSON config
    parser.add_argument("--result", help=argparse.SUPPRESS)
    settings, internal = parser.parse_args_into_dataclasses(argv)
    if internal.step:
        config = json.loads(internal.step)
        result = run_ingest(config["source"], config["work"])
        Path(internal.result).write_text(json.dumps({**result, "own_peak_mb": peak_rss_mb(os.getpid())}))
        return
    if not settings.data:
        raise SystemExit("--data is required: the folder with IMDB's train.csv.gz and test.csv.gz")
    started = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    env, servers = start_emulators()
    reviews, results, root = imdb_reviews(settings.data), [], Path(settings.workdir)
    try:
        for n in [int(s) for s in settings.sizes.split(",") if s.strip()]:
            data = root / f"data-{n}-{settings.shards}"
            build_dataset(reviews, n, settings.shards, "csv.gz", data)
            sources = upload(data, n)
            for store in [s for s in STORES if s in settings.stores.split(",")]:
                results.append({"n": n, **measure(store, sources[store], root / f"run-{n}", env)})
                log.info("N=%d %s: %.1f s, peak %.0f MB", n, store, results[-1]["wall_s"], results[-1]["own_peak_mb"])
    finally:
        for server in servers:
            server.stop()
    Path(settings.output).parent.mkdir(parents=True, exist_ok=True)
    Path(settings.output).write_text(report(results, machine(memory=True), started))
    print(Path(settings.output).read_text())


if __name__ == "__main__":
    main()
