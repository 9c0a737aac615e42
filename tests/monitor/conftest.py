"""Fixtures for the monitor tests: the tiny model's tokenizer, a reference profile, text generators."""

import contextlib
import random
import socket
import threading
import time

import numpy as np
import pytest

SUBJECTS = [
    "The film",
    "This movie",
    "The plot",
    "The acting",
    "The soundtrack",
    "The director",
    "The ending",
    "The cast",
]
VERBS = ["was", "felt", "seemed", "turned out to be", "is"]
ADJECTIVES = ["wonderful", "boring", "brilliant", "dull", "moving", "predictable", "charming", "awful", "fresh", "slow"]
TAILS = ["from start to finish", "in every scene", "for most of the story", "despite the budget", "as I expected", ""]


def review_texts(n: int, seed: int) -> list[str]:
    """English review-like texts of 1-6 sentences: the in-distribution traffic."""
    rng = random.Random(seed)
    return [
        " ".join(
            f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)} {rng.choice(TAILS)}".strip() + "."
            for _ in range(rng.randint(1, 6))
        )
        for _ in range(n)
    ]


def shifted_texts(n: int, seed: int) -> list[str]:
    """Short Cyrillic messages with digits and emoji: another language, length and charset."""
    rng = random.Random(seed)
    words = ["привет", "скидка", "звоните", "сегодня", "бесплатно", "код"]
    return [f"{rng.choice(words)} {rng.choice(words)} {rng.randint(100, 99999)} 🙂" for _ in range(n)]


def fake_probabilities(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, size=n)
    return np.stack([1 - p, p], axis=1)


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def reference_profile(tokenizer):
    """A profile of 400 review texts with uniform-ish fake scores over [0.5, 0.95]."""
    from textclf.profile import build_reference_profile

    texts = review_texts(400, seed=1)
    probabilities = fake_probabilities(400, seed=1)
    labels = probabilities.argmax(axis=1).tolist()
    return build_reference_profile(texts, labels, ["negative", "positive"], probabilities, tokenizer)


@contextlib.contextmanager
def serve_in_thread(app):
    """Run an ASGI app with uvicorn on a free 127.0.0.1 port in a daemon thread; yield its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def kserve_headers(event_id: str, kind: str, content_type: str = "application/json") -> dict[str, str]:
    """Binary-mode headers exactly as KServe's logger agent sends them (kserve pkg/logger/worker.go,
    Go CloudEvents SDK): written out by hand here so the monitor is not tested against our own stand-in."""
    return {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
        "Ce-Source": "http://localhost:9081/",
        "Ce-Time": "2026-04-10T00:23:26.080736102Z",
        "Ce-Inferenceservicename": "textclf",
        "Ce-Namespace": "default",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Metadata": "{}",
        "Traceparent": "00-55de1514e1d23ee17eb50dda6167bb8c-b6c6e0f6dd8f741d-00",
        "Content-Type": content_type,
    }


def predictions_body(scores, labels=("negative", "positive")) -> dict:
    """A V1 response for binary scores p(positive)."""
    out = []
    for p in scores:
        probs = {labels[0]: 1 - p, labels[1]: p}
        label = max(probs, key=probs.get)
        out.append({"label": label, "score": probs[label], "probabilities": probs})
    return {"predictions": out}
