"""A real ``python -m serving`` on loopback, started once per session in a subprocess.

A subprocess because kserve parses sys.argv at import and installs signal handlers in the main
thread; it also lets the shutdown test send a real SIGTERM.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bench.net import free_port
from tests.conftest import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
MODEL_NAME = "tiny"
STARTUP_SECONDS = 120  # the 2 shared cores can be busy: torch + transformers import is slow then


class RunningServer:
    def __init__(self, process: subprocess.Popen, http_port: int, grpc_port: int, log: Path):
        self.process, self.http_port, self.grpc_port, self.log = process, http_port, grpc_port, log
        self.url = f"http://127.0.0.1:{http_port}"
        self.grpc_address = f"127.0.0.1:{grpc_port}"


@contextlib.contextmanager
def serve(model_dir, tmp_dir: Path, *flags: str):
    """Run the server until the block ends; yields a :class:`RunningServer` once it is ready.
    PyTorch unless ``flags`` name another backend."""
    with serve_args(
        ["--model_dir", str(model_dir), "--model_name", MODEL_NAME, "--threads", "1", "--backend", "torch", *flags],
        tmp_dir,
        MODEL_NAME,
    ) as running:
        yield running


@contextlib.contextmanager
def serve_args(args: list[str], tmp_dir: Path, model_name: str):
    """``python -m serving`` with ``args`` on loopback ports, until the block ends (SIGTERM then)."""
    http_port, grpc_port = free_port(), free_port()
    log = tmp_dir / f"server-{http_port}.log"
    command = [
        sys.executable,
        "-m",
        "serving",
        *args,
        "--host",
        "127.0.0.1",
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = RunningServer(process, http_port, grpc_port, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}/v1/models/{model_name}", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {STARTUP_SECONDS}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def http_request(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, parsed JSON body, response headers with lower-case names) of one raw HTTP request."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read()), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def build_decisive_model(out_dir) -> str:
    """The tiny random model with its classifier re-aimed so that texts get clearly different
    probabilities: the random one answers ~0.5 for everything, which would hide mix-ups.

    The classifier reads the pooled vector's offset from the mean over ``TEXTS`` along one random
    direction, scaled to logits of a few units.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    build_tiny_model(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForSequenceClassification.from_pretrained(out_dir).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
        pooled = model.bert(**batch).pooler_output
        direction = torch.randn(pooled.shape[1], generator=generator)
        spread = ((pooled - pooled.mean(0)) @ direction).std()
        direction *= 3.0 / spread
        model.classifier.weight.copy_(torch.stack([-direction, direction]) / 2)
        model.classifier.bias.copy_(-model.classifier.weight @ pooled.mean(0))
    model.save_pretrained(out_dir)
    return str(out_dir)


@pytest.fixture(scope="session")
def decisive_model_dir(tmp_path_factory):
    return build_decisive_model(tmp_path_factory.mktemp("decisive-model"))


@pytest.fixture(scope="session")
def server(decisive_model_dir, tmp_path_factory):
    """The shared server: fp32 torch, small limits so the limit cases are cheap to send. Its request
    queue holds 128: the concurrency and isolation tests send up to 64 requests at once, and the bound
    itself has its own server in test_serving_queue.py."""
    with serve(
        decisive_model_dir,
        tmp_path_factory.mktemp("server"),
        "--max_queued_requests",
        "128",
        "--max_instances",
        "8",
        "--max_body_bytes",
        "20000",
        "--max_batch_delay_ms",
        "20",
        "--explain_max_steps",
        "64",
        "--explain_max_tokens",
        "300",
        "--explain_max_pending",
        "2",
    ) as running:
        yield running


@pytest.fixture(scope="session")
def open_server(decisive_model_dir, tmp_path_factory):
    """A second server: the default limits (4 MiB bodies, 128 texts) and the model repository
    extension on. Tests that unload the model load it again before they end."""
    with serve(
        decisive_model_dir,
        tmp_path_factory.mktemp("open-server"),
        "--enable_model_repository",
        "true",
        "--max_batch_delay_ms",
        "5",
    ) as running:
        yield running


# Fixed texts of different lengths and topics, shared by the protocol and backend tests.
TEXTS = [
    "An absolute masterpiece, I was moved to tears.",
    "The worst film I have seen this year.",
    "Meh.",
    "Great cast, weak script, and far too long for what it wanted to say. " * 6,
    "Les acteurs sont formidables et la musique aussi.",
    "I would not recommend this to anyone, not even my enemies.",
    "Surprisingly fun! The kids loved it and so did I.",
    "plot holes everywhere " * 40,
]
