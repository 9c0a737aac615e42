"""Canary analysis: the rule on its own, then the whole command against loopback fakes.

Prometheus and the two KServe revisions cannot run here, so small HTTP fakes stand in for them:
a Prometheus ``/api/v1/query`` that answers per revision, and one "ingress" that routes V1
predict calls by ``Host`` header to a previous and a canary labeller, as Knative's tag routing does.
The InferenceService comes from the fake Kubernetes API server (see fake_kube.py).
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from serving.rollout.__main__ import main
from serving.rollout.analysis import Prometheus, analyze
from tests.rollout.conftest import NAMESPACE, isvc_manifest, kserve_standard_status, kserve_status
from textclf.inferenceservice import DeploySettings, build_inference_service, predictor_name
from textclf.rollout import AnalysisError, NoCanaryError, apply_inference_service, get_status
from textclf.rollout.verdict import CanaryRules, RevisionNumbers, decide

PREV, LATEST = "textclf-predictor-00001", "textclf-predictor-00002"
# The canary model's probe texts: a question classifier's (TREC-like), not film reviews.
PROBES = [
    f"What is the capital of country number {i} ?" if i % 3 else f"Who wrote book number {i} ?" for i in range(16)
]
PREV_HOST, LATEST_HOST = "prev-textclf.models.example.com", "latest-textclf.models.example.com"


def numbers(revision=LATEST, requests=500.0, error_rate=0.001, p95_s=0.040, percent=10):
    return RevisionNumbers(revision, percent, requests, error_rate, p95_s)


GOOD_PREVIOUS = numbers(PREV, requests=4500, percent=90)


@pytest.mark.parametrize(
    "canary, agreement, action, failed",
    [
        (numbers(), (16, 16), "promote", None),
        (numbers(error_rate=0.02), (16, 16), "rollback", "error rate"),
        (numbers(p95_s=0.070), (16, 16), "rollback", "p95 latency"),
        (numbers(), (14, 16), "rollback", "probe labels"),
        (numbers(p95_s=math.nan), (16, 16), "rollback", "p95 latency"),  # no number, no pass
        (numbers(requests=20), (16, 16), "hold", "traffic"),
    ],
)
def test_rule(canary, agreement, action, failed):
    verdict = decide(canary, GOOD_PREVIOUS, CanaryRules(), agreement)
    assert verdict.action == action
    assert [c.name for c in verdict.checks if not c.passed] == ([failed] if failed else [])
    text = verdict.describe()
    assert f"decision: {action.upper()}" in text
    assert f"canary {canary.requests:.0f} requests, previous 4500" in text


def test_latency_limit_is_ratio_plus_slack():
    # 40 ms * 1.25 + 10 ms = 60 ms
    assert decide(numbers(p95_s=0.0599), GOOD_PREVIOUS, CanaryRules(), None).action == "promote"
    assert decide(numbers(p95_s=0.0601), GOOD_PREVIOUS, CanaryRules(), None).action == "rollback"
    assert "limit 60.0 ms" in decide(numbers(), GOOD_PREVIOUS, CanaryRules(), None).describe()


def test_an_idle_previous_revision_fails_closed():
    idle = RevisionNumbers(PREV, 90, 0.0, math.nan, math.nan)
    verdict = decide(numbers(), idle, CanaryRules(), None)
    assert verdict.action == "rollback"
    assert "previous n/a" in verdict.describe()


class Fakes:
    """Fake Prometheus and fake ingress, each on its own loopback port."""

    def __init__(self, previous=PREV, latest=LATEST, canary_host=LATEST_HOST):
        self.metrics = {  # revision (or predictor Deployment) -> (inference requests, 5xx responses, p95 seconds)
            previous: (4500.0, 4.0, 0.040),
            latest: (500.0, 0.0, 0.042),
        }
        self.canary_host = canary_host
        self.queries: list[str] = []
        self.hosts: list[str] = []
        self.authorizations: list[str | None] = []
        self.canary_flips = 0  # the canary labels this many probe texts differently
        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (self._prometheus(), self._ingress())]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.servers[index].server_address[1]}"

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def _prometheus(self):
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)["query"][0]
                fakes.queries.append(query)
                # Serverless: the Knative revision label; Standard: the predictor Deployment's app label.
                revision = re.search(r'(?:serving_knative_dev_revision="|app="isvc\.)([^"]+)"', query)[1]
                requests, errors, p95 = fakes.metrics[revision]
                if "histogram_quantile" in query:
                    value = p95
                elif 'code=~"5.."' in query:
                    value = errors
                else:
                    value = requests
                result = [] if value is None else [{"metric": {}, "value": [1700000000, str(value)]}]
                self._send({"status": "success", "data": {"resultType": "vector", "result": result}})

            def _send(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def _ingress(self):
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                host = self.headers["Host"]
                fakes.hosts.append(host)
                fakes.authorizations.append(self.headers.get("Authorization"))
                assert self.path == "/v1/models/textclf:predict", self.path
                texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["instances"]
                labels = ["HUM" if t.startswith("Who") else "LOC" for t in texts]
                if host == fakes.canary_host:
                    labels = [
                        flip(label) if PROBES.index(t) < fakes.canary_flips else label
                        for t, label in zip(texts, labels)
                    ]
                data = json.dumps({"predictions": [{"label": label, "score": 0.9} for label in labels]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


def flip(label):
    return "LOC" if label == "HUM" else "HUM"


@pytest.fixture(autouse=True)
def model_store(tmp_path, monkeypatch):
    """The models' gs:// folders, on local disk behind textclf.platform.storage.read_text (the emulator-free
    transport): each has the probe_texts.jsonl that train writes; run-3 was trained before they existed."""
    from textclf.platform import storage
    from textclf.probe import write_probe_texts

    for run in ("run-1", "run-2"):
        folder = tmp_path / "bucket" / "models" / run
        folder.mkdir(parents=True)
        write_probe_texts(
            folder, [{"text": text, "label": "HUM" if text.startswith("Who") else "LOC"} for text in PROBES]
        )
    (tmp_path / "bucket" / "models" / "run-3").mkdir()
    reads = []

    real_read_text = storage.read_text

    def read_text(uri):
        reads.append(uri)
        if not uri.startswith("gs://"):  # other schemes: the real module
            return real_read_text(uri)
        return (tmp_path / uri.removeprefix("gs://")).read_text(encoding="utf-8")

    monkeypatch.setattr(storage, "read_text", read_text)
    return reads


@pytest.fixture
def fakes():
    f = Fakes()
    yield f
    f.close()


@pytest.fixture
def canary_live(kube, api):
    """model 2 is a 10% canary over model 1, with KServe's tag URLs."""
    apply_inference_service(isvc_manifest(), api=api)
    apply_inference_service(isvc_manifest("gs://bucket/models/run-2", canary=10), api=api)
    kube.set_status(
        NAMESPACE,
        "textclf",
        kserve_status(
            LATEST, PREV, 10, generation=2, urls={"prev": f"http://{PREV_HOST}", "latest": f"http://{LATEST_HOST}"}
        ),
    )


def test_analyze_queries_each_revision_and_probes_both_through_the_ingress(fakes, canary_live, api, model_store):
    verdict = analyze(get_status("textclf", api=api), Prometheus(fakes.url(0)), ingress_url=fakes.url(1))
    assert model_store == ["gs://bucket/models/run-2/probe_texts.jsonl"], "the canary model's own probe texts"

    assert verdict.action == "promote"
    assert (verdict.canary.revision, verdict.canary.requests) == (LATEST, 500.0)
    assert verdict.previous.error_rate == pytest.approx(4 / 4500)
    assert verdict.canary.p95_s == pytest.approx(0.042)
    assert len(fakes.queries) == 6
    assert all('endpoint=~"v1_predict|v2_infer"' in q for q in fakes.queries if "histogram" not in q)
    # the model's 16 probe texts in batches of 16, once per revision, routed by Host header
    assert fakes.hosts == [LATEST_HOST, PREV_HOST]
    assert "16/16 texts labelled the same" in verdict.describe()


def test_analyze_needs_tag_urls_for_probes(fakes, kube, api, canary_live):
    kube.set_status(NAMESPACE, "textclf", kserve_status(LATEST, PREV, 10, generation=2))  # no tag URLs
    with pytest.raises(AnalysisError, match="enable-tag-routing"):
        analyze(get_status("textclf", api=api), Prometheus(fakes.url(0)))
    assert analyze(get_status("textclf", api=api), Prometheus(fakes.url(0)), probes=()).action == "promote"


def test_a_canary_model_without_probe_texts_is_a_named_error_not_film_reviews(
    fakes, kube, api, kubeconfig, tmp_path, capsys
):
    apply_inference_service(isvc_manifest(), api=api)
    apply_inference_service(isvc_manifest("gs://bucket/models/run-3", canary=10), api=api)
    kube.set_status(
        NAMESPACE,
        "textclf",
        kserve_status(
            LATEST, PREV, 10, generation=2, urls={"prev": f"http://{PREV_HOST}", "latest": f"http://{LATEST_HOST}"}
        ),
    )
    status = get_status("textclf", api=api)
    with pytest.raises(AnalysisError, match="run-3 has no probe_texts.jsonl.*--probes FILE"):
        analyze(status, Prometheus(fakes.url(0)), ingress_url=fakes.url(1))
    own = tmp_path / "probes.txt"
    own.write_text("\n".join(PROBES[:4]) + "\n")
    assert run_cli(kubeconfig, fakes, "--probes", str(own)) == 0, "--probes FILE still overrides"
    assert "4/4 texts labelled the same" in capsys.readouterr().out


def test_probe_texts_of_an_unreadable_scheme_are_a_named_error():
    from textclf.rollout.verdict import model_probe_texts

    with pytest.raises(AnalysisError, match="cannot read the probe texts of the canary's model pvc://b/m"):
        model_probe_texts("pvc://b/m")  # no fsspec store reads pvc://
    with pytest.raises(AnalysisError, match="model URI is not in the InferenceService"):
        model_probe_texts(None)


def test_analyze_without_a_canary(fakes, kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_status(PREV))
    with pytest.raises(NoCanaryError):
        analyze(get_status("textclf", api=api), Prometheus(fakes.url(0)))


def test_only_http_urls_are_opened(fakes, canary_live, api):
    with pytest.raises(AnalysisError, match="Prometheus URL must be http"):
        Prometheus("file:///etc/passwd")
    with pytest.raises(AnalysisError, match="ingress URL must be http"):
        analyze(get_status("textclf", api=api), Prometheus(fakes.url(0)), ingress_url="ftp://gateway")


def test_prometheus_unreachable_is_a_named_error(canary_live, api):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(AnalysisError, match="Prometheus query failed"):
        analyze(get_status("textclf", api=api), Prometheus(closed, timeout_s=2))


def run_cli(kubeconfig, fakes, *extra):
    return main(
        [
            "--kubeconfig",
            str(kubeconfig),
            "analyze",
            "textclf",
            "--prometheus",
            fakes.url(0),
            "--ingress-url",
            fakes.url(1),
            *extra,
        ]
    )


def test_cli_promotes_a_good_canary(fakes, canary_live, kube, kubeconfig, capsys):
    assert run_cli(kubeconfig, fakes, "--act") == 0
    out = capsys.readouterr().out
    assert "PASS  error rate" in out and "decision: PROMOTE" in out and "done: promote" in out
    assert "canaryTrafficPercent" not in kube.get(NAMESPACE, "textclf")["spec"]["predictor"]


def test_cli_sends_the_token_file_as_a_bearer_token_with_every_probe(fakes, canary_live, kubeconfig, tmp_path):
    """The gateways refuse anonymous calls and open tag routes only to the rollout identity."""
    token = tmp_path / "token"
    token.write_text("header.payload.signature\n")
    assert run_cli(kubeconfig, fakes, "--token-file", str(token)) == 0
    assert fakes.authorizations == ["Bearer header.payload.signature"] * 2
    token.write_text("")
    with pytest.raises(SystemExit, match="is empty"):
        run_cli(kubeconfig, fakes, "--token-file", str(token))


def test_cli_rolls_back_a_canary_that_disagrees(fakes, canary_live, kube, kubeconfig, capsys):
    fakes.canary_flips = 3
    assert run_cli(kubeconfig, fakes, "--act") == 3
    out = capsys.readouterr().out
    assert "FAIL  probe labels   13/16 texts labelled the same = 81.25% (min 95.00%)" in out
    assert "decision: ROLLBACK (failed: probe labels)" in out
    assert kube.get(NAMESPACE, "textclf")["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_cli_holds_without_enough_traffic_and_dry_run_writes_nothing(fakes, canary_live, kube, kubeconfig, capsys):
    kube.requests.clear()
    assert run_cli(kubeconfig, fakes, "--act", "--min-requests", "1000") == 4
    assert "decision: HOLD" in capsys.readouterr().out
    fakes.metrics[LATEST] = (500.0, 50.0, 0.042)  # 10% errors
    assert run_cli(kubeconfig, fakes) == 3
    assert "dry run: pass --act to rollback" in capsys.readouterr().out
    assert kube.writes() == []


# --- Standard mode: per predictor Deployment, probes through each predictor's Service ---

U1, U2 = "gs://bucket/models/run-1", "gs://bucket/models/run-2"
STABLE_SERVICE, CANARY_SERVICE = f"textclf-{predictor_name(U1)}-predictor", f"textclf-{predictor_name(U2)}-predictor"


def standard(model, live=""):
    return build_inference_service(
        model, DeploySettings(namespace=NAMESPACE, deployment_mode="standard", live_model_uri=live)
    )


@pytest.fixture
def standard_fakes():
    f = Fakes(STABLE_SERVICE, CANARY_SERVICE, canary_host=f"{CANARY_SERVICE}.{NAMESPACE}.svc.cluster.local")
    yield f
    f.close()


@pytest.fixture
def standard_canary(kube, api):
    apply_inference_service(standard(U1), api=api)
    apply_inference_service(standard(U2, live=U1), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_standard_status({predictor_name(U2): (10, True)}, generation=2))


def test_standard_mode_selects_predictor_deployments_by_their_app_label(
    standard_fakes, standard_canary, api, model_store
):
    verdict = analyze(
        get_status("textclf", api=api), Prometheus(standard_fakes.url(0)), ingress_url=standard_fakes.url(1)
    )
    assert model_store == [f"{U2}/probe_texts.jsonl"], "the canary predictor's model, not the stable one's"

    assert verdict.action == "promote"
    assert (verdict.canary.revision, verdict.canary.percent) == (CANARY_SERVICE, 10)
    assert (verdict.previous.revision, verdict.previous.percent) == (STABLE_SERVICE, 90)
    assert all(f'app="isvc.{CANARY_SERVICE}"' in q for q in standard_fakes.queries[:3])
    assert all(f'app="isvc.{STABLE_SERVICE}"' in q for q in standard_fakes.queries[3:])
    assert standard_fakes.hosts == [
        f"{CANARY_SERVICE}.{NAMESPACE}.svc.cluster.local",
        f"{STABLE_SERVICE}.{NAMESPACE}.svc.cluster.local",
    ]


def test_standard_mode_cli_promotes_and_says_what_w_and_b_did(
    standard_fakes, standard_canary, kube, kubeconfig, capsys, monkeypatch
):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert run_cli(kubeconfig, standard_fakes, "--act") == 0
    out = capsys.readouterr().out
    assert "decision: PROMOTE" in out and "done: promote" in out
    assert "W&B offline: no production alias set" in out
    live = kube.get(NAMESPACE, "textclf")
    assert "canary" not in live["spec"] and live["spec"]["predictor"]["name"] == predictor_name(U2)


def test_standard_mode_without_a_canary(standard_fakes, kube, api):
    apply_inference_service(standard(U1), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_standard_status())
    with pytest.raises(NoCanaryError, match=r"no canary in progress \(no spec.canary\)"):
        analyze(get_status("textclf", api=api), Prometheus(standard_fakes.url(0)))
