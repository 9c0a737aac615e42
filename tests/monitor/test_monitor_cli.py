"""The drift check (against a real monitor on loopback), the logger-agent stand-in, W&B offline, CLI errors."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.logger_agent import LoggerTarget, create_agent
from serving.monitor.__main__ import main
from serving.monitor.app import create_app
from serving.monitor.check import breached_metrics, run_check
from serving.monitor.monitor import DriftMonitor, MonitorConfig
from tests.cloud.wandb_records import history, read_records

from .conftest import kserve_headers, predictions_body, review_texts, serve_in_thread, shifted_texts

ROOT = Path(__file__).resolve().parents[2]


def fill(monitor, client, texts, score):
    for i in range(0, len(texts), 10):
        for kind, body in (
            ("request", {"instances": texts[i : i + 10]}),
            ("response", predictions_body([score] * len(texts[i : i + 10]))),
        ):
            assert client.post("/", content=json.dumps(body), headers=kserve_headers(f"c-{i}", kind)).status_code == 200


@pytest.fixture()
def monitor_url(reference_profile, tokenizer):
    """A monitor with a small window; yields (base URL, client, monitor)."""
    monitor = DriftMonitor(reference_profile, tokenizer, MonitorConfig(window_size=60, min_samples=30))
    with serve_in_thread(create_app(monitor)) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield base, client, monitor


def test_check_runs_the_command_only_on_drift(monitor_url, tmp_path):
    base, client, monitor = monitor_url
    marker = tmp_path / "submitted"
    then = f"{sys.executable} -c \"open({str(marker)!r}, 'w').write('run')\""

    fill(monitor, client, review_texts(60, seed=5), 0.7)
    # constant 0.7 scores, all "positive": the score and label shares moved, the texts did not
    assert monitor.active_alerts == {"score_psi", "label_share_shift"}
    assert run_check(f"{base}/drift", thresholds={"length_psi": 0.2}, then=then) == 0 and not marker.exists()

    fill(monitor, client, shifted_texts(60, seed=5), 0.7)
    assert run_check(f"{base}/drift", thresholds={"length_psi": 0.2}, then=then) == 0 and marker.read_text() == "run"
    assert run_check(f"{base}/drift", thresholds={"length_psi": 0.2}) == 1
    failing = f'{sys.executable} -c "raise SystemExit(7)"'
    assert run_check(f"{base}/drift", then=failing) == 7  # the monitor's own alerts, the command's status


def test_check_cli_end_to_end_and_unreachable_monitor(monitor_url):
    base, client, monitor = monitor_url
    fill(monitor, client, shifted_texts(60, seed=6), 0.99)
    command = [sys.executable, "-m", "serving.monitor", "check", "--url", f"{base}/drift"]
    assert subprocess.run(command, cwd=ROOT, capture_output=True, timeout=60).returncode == 1
    assert run_check("http://127.0.0.1:9/drift", timeout=2) == 2


def test_breached_metrics_waits_for_min_samples():
    report = {
        "metrics": {"length_psi": 0.9, "score_psi": 0.9},
        "alerts": [],
        "window": {"texts": 10, "predictions": 100, "min_samples": 50},
    }
    assert breached_metrics(report, {"length_psi": 0.2, "score_psi": 0.2}) == {"score_psi": 0.9}
    assert breached_metrics(report) == {}


def test_bad_cli_input_is_a_named_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--url", "http://x/drift", "--threshold", "bogus=1"])
    assert exit_info.value.code == 2 and "bogus=1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--model_dir", str(tmp_path)])  # no profile.json there
    assert "no reference profile" in capsys.readouterr().err


def test_logger_agent_sends_what_kserve_sends(tokenizer):
    """The stand-in's events carry the same headers and bodies as hand-written KServe events."""
    received = []
    sink, upstream = FastAPI(), FastAPI()

    @sink.post("/")
    async def record(request: Request):
        received.append((dict(request.headers), await request.body()))
        return {}

    @upstream.post("/v1/models/textclf:predict")
    async def predict(request: Request):
        texts = (await request.json())["instances"]
        if texts == ["boom"]:
            return JSONResponse({"error": "boom"}, status_code=500)
        return predictions_body([0.8] * len(texts))

    with serve_in_thread(sink) as sink_url, serve_in_thread(upstream) as upstream_url:
        target = LoggerTarget(url=sink_url + "/", source="http://localhost:9081/", inference_service="textclf")
        with serve_in_thread(create_agent(upstream_url, target)) as agent_url:
            body = json.dumps({"instances": ["a fine film"]})
            r = httpx.post(
                f"{agent_url}/v1/models/textclf:predict",
                content=body,
                headers={"Ce-Id": "fixed-id", "Content-Type": "application/json"},
            )
            assert r.status_code == 200 and r.json() == predictions_body([0.8])
            r = httpx.post(
                f"{agent_url}/v1/models/textclf:predict", json={"instances": ["boom"]}, headers={"Ce-Id": "err-id"}
            )
            assert r.status_code == 500
            deadline = time.monotonic() + 10
            while len(received) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
    by_id_type = {(h["ce-id"], h["ce-type"].rsplit(".", 1)[1]): (h, b) for h, b in received}
    assert set(by_id_type) == {
        ("fixed-id", "request"),
        ("fixed-id", "response"),
        ("err-id", "request"),
    }  # no response event for a 500
    for kind, expected_body in (("request", body.encode()), ("response", json.dumps(predictions_body([0.8])).encode())):
        headers, sent = by_id_type[("fixed-id", kind)]
        expected = {
            k.lower(): v for k, v in kserve_headers("fixed-id", kind).items() if k not in ("Ce-Time", "Traceparent")
        }
        assert {k: headers[k] for k in expected} == expected
        assert headers["ce-time"].endswith("Z")
        assert json.loads(sent) == json.loads(expected_body)


def test_wandb_offline_logs_metrics_and_samples(monitor_url, tmp_path):
    from serving.monitor.wandb_sink import WandbSink

    base, client, monitor = monitor_url
    fill(monitor, client, review_texts(20, seed=8), 0.7)
    sink = WandbSink("textclf-monitor-test", every=2, mode="offline", run_dir=str(tmp_path))
    for _ in range(4):
        sink.observe(monitor)
    run_dir = Path(sink.run.dir).parent
    sink.close()
    # wandb-core can still be flushing the run file when finish() returns (seen under load): poll
    deadline = time.monotonic() + 15
    while len(rows := history(read_records(run_dir))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [json.loads(r["_step"]) for r in rows] == [2, 4]  # every 2 events
    assert json.loads(rows[-1]["window/texts"]) == 20
    assert json.loads(rows[-1]["drift/length_psi"]) == pytest.approx(monitor.metrics()["length_psi"])
    assert json.loads(rows[-1]["samples/_type"]) == "table-file" and json.loads(rows[-1]["samples/nrows"]) == 20
    table = json.loads(next((run_dir / "files" / "media" / "table").glob("samples_*.table.json")).read_text())
    assert table["columns"] == ["id", "text", "label", "score"] and len(table["data"]) == 20


def test_the_webhook_url_comes_from_a_mounted_secret_file(tmp_path):
    """manifests/monitor mounts the optional Secret as a file: no URL in the environment."""
    from serving.monitor.__main__ import build_parser, webhook_url

    secret = tmp_path / "url"
    args = build_parser().parse_args(["serve", "--model_dir", "m", "--webhook_url_file", str(secret)])
    assert webhook_url(args) is None  # the Secret is optional: no file, no webhook
    secret.write_text("https://hooks.example/abc\n")
    assert webhook_url(args) == "https://hooks.example/abc"
    args.webhook_url = "https://hooks.example/flag"
    assert webhook_url(args) == "https://hooks.example/flag"
