"""End to end on loopback: the real model server (``python -m serving``, a subprocess), the
logger-agent stand-in in front of it, and the monitor. In-distribution traffic raises no alert,
shifted traffic (another language, length and charset) does."""

import time

import httpx
import numpy as np
import pytest

from bench.logger_agent import LoggerTarget, create_agent
from serving.monitor.app import create_app
from serving.monitor.monitor import DriftMonitor, MonitorConfig
from tests.serving.conftest import MODEL_NAME, build_decisive_model, serve
from textclf.profile import build_reference_profile

from .conftest import review_texts, serve_in_thread, shifted_texts

WINDOW = 300
PREDICT = f"/v1/models/{MODEL_NAME}:predict"


def predict(client, texts, batch=16):
    """Probabilities (in label order) of ``texts`` from the V1 endpoint."""
    rows = []
    for i in range(0, len(texts), batch):
        response = client.post(PREDICT, json={"instances": texts[i : i + batch]})
        assert response.status_code == 200, response.text
        rows += [
            [p["probabilities"][name] for name in ("negative", "positive")] for p in response.json()["predictions"]
        ]
    return np.array(rows)


def wait_for_window(client, n, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        report = client.get("/drift").json()
        if report["events"]["accepted"].get("paired", 0) >= n:
            return report
        assert time.monotonic() < deadline, f"monitor saw {report['events']} after {timeout}s"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def model_server(tmp_path_factory):
    model_dir = build_decisive_model(tmp_path_factory.mktemp("decisive-model"))
    with serve(model_dir, tmp_path_factory.mktemp("server"), "--max_instances", "32") as running:
        yield model_dir, running.url


def test_shifted_traffic_alerts_and_in_distribution_does_not(model_server, tokenizer):
    model_dir, server_url = model_server
    with httpx.Client(base_url=server_url, timeout=60) as server:
        reference_texts = review_texts(800, seed=100)
        probabilities = predict(server, reference_texts)
    assert probabilities.std() > 0.01  # a model that answers the same for everything would hide score drift
    profile = build_reference_profile(
        reference_texts, probabilities.argmax(1).tolist(), ["negative", "positive"], probabilities, tokenizer
    )

    monitor = DriftMonitor(profile, tokenizer, MonitorConfig(window_size=WINDOW, min_samples=WINDOW // 2))
    with serve_in_thread(create_app(monitor)) as monitor_url:
        target = LoggerTarget(url=monitor_url + "/", source="http://localhost:9081/", inference_service="textclf")
        with (
            serve_in_thread(create_agent(server_url, target)) as agent_url,
            httpx.Client(base_url=agent_url, timeout=60) as agent,
            httpx.Client(base_url=monitor_url) as client,
        ):
            calls = WINDOW // 15
            predict(agent, review_texts(WINDOW, seed=200), batch=15)
            before = wait_for_window(client, calls)
            predict(agent, shifted_texts(WINDOW, seed=200), batch=15)
            after = wait_for_window(client, 2 * calls)

    assert before["window"] == {"texts": WINDOW, "predictions": WINDOW, "size": WINDOW, "min_samples": WINDOW // 2}
    assert before["alerts"] == [], before["metrics"]
    assert before["metrics"]["length_psi"] < 0.1 and before["metrics"]["score_psi"] < 0.2
    assert {"length_psi", "script_js", "ascii_share_drop", "unknown_token_rate_increase"} <= set(after["alerts"])
    assert after["live"]["script_share"] == {"CYRILLIC": 1.0}
    assert after["events"]["rejected"] == {} and before["events"]["rejected"] == {}
