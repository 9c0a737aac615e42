"""The monitor on loopback (real uvicorn on 127.0.0.1) fed CloudEvents as KServe's logger sends them."""

import gc
import json
import logging
import tracemalloc

import httpx
import numpy as np
import pytest
from fastapi import FastAPI, Request

from serving.monitor.app import create_app
from serving.monitor.monitor import DriftMonitor, MonitorConfig

from .conftest import kserve_headers, predictions_body, review_texts, serve_in_thread, shifted_texts

WINDOW, MIN_SAMPLES, MAX_PENDING = 120, 60, 10


def send_call(client, url, event_id, texts, scores):
    """The two events KServe logs for one predict call (request first, then response)."""
    request = client.post(url, content=json.dumps({"instances": texts}), headers=kserve_headers(event_id, "request"))
    response = client.post(
        url, content=json.dumps(predictions_body(scores)), headers=kserve_headers(event_id, "response")
    )
    return request, response


def in_distribution_scores(n, seed):
    return np.random.default_rng(seed).uniform(0.05, 0.95, size=n).tolist()


def metric_value(metrics_text, name, labels):
    line = next(row for row in metrics_text.splitlines() if row.startswith(f"{name}{{{labels}}}"))
    return float(line.rsplit(" ", 1)[1])


@pytest.fixture()
def webhook():
    """A loopback receiver for alert webhooks; yields (url, received payloads)."""
    received = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request):
        received.append(await request.json())
        return {}

    with serve_in_thread(app) as base:
        yield f"{base}/hook", received


@pytest.fixture()
def service(reference_profile, tokenizer, webhook):
    config = MonitorConfig(window_size=WINDOW, min_samples=MIN_SAMPLES, max_pending=MAX_PENDING, max_samples=20)
    monitor = DriftMonitor(reference_profile, tokenizer, config)
    with serve_in_thread(create_app(monitor, webhook_url=webhook[0], max_body_bytes=64 * 1024)) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            yield client, monitor, webhook[1]


def test_paired_events_update_metrics_without_alert(service):
    client, monitor, hooks = service
    texts, scores = review_texts(100, seed=7), in_distribution_scores(100, seed=7)
    for i in range(0, 100, 10):
        request, response = send_call(client, "/", f"call-{i}", texts[i : i + 10], scores[i : i + 10])
        assert request.status_code == 200 and request.json() == {
            "accepted": "request",
            "id": f"call-{i}",
            "sampled": 10,
            "total": 10,
        }
        assert response.status_code == 200

    metrics = client.get("/metrics").text
    assert metric_value(metrics, "textclf_drift_window_samples", 'window="texts"') == 100
    assert metric_value(metrics, "textclf_drift_window_samples", 'window="predictions"') == 100
    assert metric_value(metrics, "textclf_monitor_events_total", 'kind="paired"') == 10
    assert metric_value(metrics, "textclf_drift_alert", 'metric="length_psi"') == 0
    length_psi = metric_value(metrics, "textclf_drift", 'metric="length_psi"')
    assert 0 <= length_psi < 0.2

    report = client.get("/drift").json()
    assert report["alerts"] == [] and report["window"]["texts"] == 100
    assert report["metrics"]["length_psi"] == pytest.approx(length_psi)
    assert report["live"]["script_share"] == {"LATIN": 1.0}
    assert len(monitor.samples) == 20  # paired samples for W&B, capped
    assert hooks == []


def test_empty_monitor_reports_no_data(service):
    client, _, _ = service
    report = client.get("/drift").json()
    assert all(v is None for v in report["metrics"].values())
    psi = [
        row for row in client.get("/metrics").text.splitlines() if row.startswith('textclf_drift{metric="score_psi"}')
    ]
    assert "NaN" in psi[0]


def test_structured_mode_and_v2_payloads_are_accepted(service):
    client, monitor, _ = service
    event = {
        "specversion": "1.0",
        "id": "s-1",
        "source": "http://localhost:9081/",
        "type": "org.kubeflow.serving.inference.request",
        "datacontenttype": "application/json",
        "inferenceservicename": "textclf",
        "data": {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["good film.", "bad film."]}]},
    }
    r = client.post("/", content=json.dumps(event), headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 200, r.text
    v2_response = {
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["positive", "negative"]},
            {"name": "score", "datatype": "FP32", "shape": [2], "data": [0.9, 0.8]},
        ]
    }
    r = client.post("/", content=json.dumps(v2_response), headers=kserve_headers("s-1", "response"))
    assert r.status_code == 200, r.text
    assert (len(monitor.texts), len(monitor.predictions), monitor.events["paired"]) == (2, 2, 1)
    assert [s["label"] for s in monitor.samples] == ["positive", "negative"]


@pytest.mark.parametrize(
    "headers, body, status, reason",
    [
        ({"Content-Type": "application/json"}, b'{"instances": ["x"]}', 400, "not_cloudevent"),
        (
            kserve_headers("m", "request") | {"Ce-Type": "com.example.other"},
            b'{"instances": ["x"]}',
            400,
            "unknown_type",
        ),
        (kserve_headers("m", "request"), b"{not json", 400, "payload_not_json"),
        (kserve_headers("m", "request"), b'{"instances": "x"}', 400, "bad_payload"),
        (kserve_headers("m", "request"), b'{"instances": [1, 2]}', 400, "bad_payload"),
        (kserve_headers("m", "request"), b'{"instances": []}', 400, "bad_payload"),
        (kserve_headers("m", "request"), b'{"instances": ["\\ud800"]}', 400, "bad_payload"),  # lone surrogate
        (
            kserve_headers("m", "response"),
            b'{"predictions": [{"label": "positive", "score": NaN}]}',
            400,
            "bad_payload",
        ),
        (kserve_headers("m", "response"), b'{"predictions": [{"label": "positive", "score": 7}]}', 400, "bad_payload"),
        (kserve_headers("m", "response"), b'{"predictions": [{"label": "spam", "score": 0.5}]}', 400, "unknown_label"),
        ({"Content-Type": "application/cloudevents+json"}, b"[]", 400, "not_cloudevent"),
        (kserve_headers("m", "request"), b'{"instances": ["' + b"a" * 70000 + b'"]}', 413, "too_large"),
    ],
)
def test_malformed_events_get_4xx_and_are_counted(service, headers, body, status, reason):
    client, monitor, _ = service
    r = client.post("/", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["reason"] == reason and r.json()["error"]
    assert metric_value(client.get("/metrics").text, "textclf_monitor_events_rejected_total", f'reason="{reason}"') == 1
    # nothing of the bad event reached the windows, and the server still answers
    assert len(monitor.texts) == len(monitor.predictions) == 0
    assert client.get("/healthz").json() == {"status": "ok"}


def test_shifted_traffic_raises_alert_log_and_webhook(service, caplog):
    client, monitor, hooks = service
    caplog.set_level(logging.WARNING, logger="serving.monitor")
    texts = shifted_texts(WINDOW, seed=3)
    for i in range(0, WINDOW, 20):
        send_call(client, "/", f"shift-{i}", texts[i : i + 20], [0.99] * 20)

    report = client.get("/drift").json()
    assert {
        "length_psi",
        "script_js",
        "ascii_share_drop",
        "unknown_token_rate_increase",
        "score_psi",
        "label_share_shift",
    } <= set(report["alerts"])
    assert report["metrics"]["label_share_shift"] == pytest.approx(
        abs(1.0 - report["reference"]["label_share"]["positive"])
    )
    assert any("DRIFT ALERT length_psi" in r.getMessage() for r in caplog.records)
    metrics = client.get("/metrics").text
    assert metric_value(metrics, "textclf_drift_alert", 'metric="script_js"') == 1
    assert metric_value(metrics, "textclf_drift_alerts_total", 'metric="script_js"') == 1  # raised once, not per event
    deadline = __import__("time").monotonic() + 10
    while len(hooks) < len(report["alerts"]) and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    assert {h["metric"] for h in hooks} == set(report["alerts"])
    assert all(h["active"] and h["text"].startswith("DRIFT ALERT") for h in hooks)


def test_memory_stays_bounded_over_many_events(service):
    """450 calls, a third of them with no response (never paired): every structure stays capped,
    and once the windows are full, 300 more calls (600 events) leave traced memory where it was."""
    client, monitor, _ = service
    texts = review_texts(50, seed=11)

    def burst(start, count):
        for i in range(start, start + count):
            body = json.dumps({"instances": texts[i % 40 : i % 40 + 5]})
            assert client.post("/", content=body, headers=kserve_headers(f"m-{i}", "request")).status_code == 200
            if i % 3:
                body = json.dumps(predictions_body([0.7] * 5))
                assert client.post("/", content=body, headers=kserve_headers(f"m-{i}", "response")).status_code == 200

    tracemalloc.start()  # before the warm-up: what the full windows hold is traced on both sides
    try:
        burst(0, 150)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        burst(150, 300)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(monitor.texts) == len(monitor.predictions) == WINDOW
    assert len(monitor.pending) <= MAX_PENDING and len(monitor.samples) == 20
    assert monitor.events["request"] == 450 and monitor.events["unpaired_evicted"] >= 140
    # a leak of one small object (~100 bytes) per event would be 60 kB here
    assert growth < 40_000, f"traced memory grew by {growth} bytes over 300 calls"
