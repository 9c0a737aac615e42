"""Canary analysis: compare the canary with the model it would replace, then promote or roll back.

Two kinds of evidence, per Knative revision (Serverless) or per predictor Deployment (Standard):
- the servers' Prometheus metrics over a window: inference request count, error rate (5xx
  share of ``textclf_http_requests_total``, see serving/guards.py), p95 of kserve's
  ``request_predict_seconds`` histogram. Serverless selects a revision by the pod label
  ``serving.knative.dev/revision``; Standard has no revisions, and selects a predictor by the pod
  label KServe gives every pod of a predictor Deployment, ``app: isvc.<Deployment name>``
  (``<service>-<predictor name>-predictor``; KServe v0.20.0 deployment_reconciler.go), which
  also tells the canary's pods from the stable ones;
- probe texts sent to each through its own URL: Serverless, the ``prev`` / ``latest`` tag URLs KServe
  sets with the annotation ``serving.kserve.io/enable-tag-routing: "true"``; Standard, each predictor's
  cluster-local Service (``http://<Deployment>.<ns>.svc.cluster.local``, reachable from inside the
  cluster). The share of texts both label the same. The texts are the canary model's own
  (``probe_texts.jsonl`` in its Model directory, a seeded sample of its validation texts, read from
  its storage URI), so an intent model is probed with intents, not with another domain's text.

The verdict itself (the rule, which fails closed) is ``textclf.rollout.verdict``'s: this module
gathers the numbers and the probe labels it decides on.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from textclf.inferenceservice import SERVERLESS, STANDARD
from textclf.rollout.errors import AnalysisError
from textclf.rollout.operations import RolloutStatus, TrafficTarget
from textclf.rollout.verdict import (
    CanaryRules,
    RevisionNumbers,
    Verdict,
    canary_model_uri,
    canary_targets,
    decide,
    model_probe_texts,
)
from textclf.settings import setting


@dataclass
class MetricNames:
    """The PromQL names: the server's metrics and the labels that tell the canary's pods apart.

    The default labels are what Prometheus's usual pod scrape job (``labelmap`` of
    ``__meta_kubernetes_pod_label_(.+)``) makes of the pod labels ``serving.knative.dev/revision``
    (Serverless) and ``app`` (Standard, value ``isvc.<predictor Deployment>``).
    """

    requests_counter: str = setting("textclf_http_requests_total", "Counter of HTTP requests by endpoint and code.")
    request_filter: str = setting(
        'endpoint=~"v1_predict|v2_infer"',
        "Label filter for inference requests (health checks and scrapes are no traffic).",
    )
    status_label: str = setting("code", "Label holding the HTTP status code.")
    error_status_regex: str = setting("5..", "Status codes that count as errors.")
    latency_histogram: str = setting("request_predict_seconds", "Histogram of predict latency (kserve's).")
    revision_label: str = setting(
        "serving_knative_dev_revision", "Label holding the Knative revision (Serverless mode)."
    )
    deployment_label: str = setting(
        "app", "Label holding the pod label app=isvc.<predictor Deployment> (Standard mode)."
    )
    window: str = setting("10m", "PromQL range the numbers are taken over.")


def http_url(url: str, what: str) -> str:
    """``url`` when it is http(s): urllib would also open file:// and ftp:// URLs.

    Raises:
        AnalysisError: any other scheme.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise AnalysisError(f"{what} must be http:// or https://, got {url!r}")
    return url


class Prometheus:
    """The two things we need from Prometheus's HTTP API: an instant query, as one number."""

    def __init__(self, base_url: str, timeout_s: float = 10.0):
        self.base_url = http_url(base_url, "the Prometheus URL").rstrip("/")
        self.timeout_s = timeout_s

    def value(self, promql: str) -> float:
        """The query's single value; NaN when it returns no series (no traffic, no data)."""
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise AnalysisError(f"Prometheus query failed at {self.base_url}: {e} (query: {promql})") from e
        if body.get("status") != "success":
            raise AnalysisError(f"Prometheus rejected the query {promql!r}: {body.get('error', body)}")
        result = body["data"]["result"]
        if not result:
            return math.nan
        if len(result) > 1:
            raise AnalysisError(f"expected one series from {promql!r}, got {len(result)}")
        return float(result[0]["value"][1])


def pod_selector(names: MetricNames, target: TrafficTarget, deployment_mode: str) -> str:
    """The PromQL label matcher for the pods behind one traffic target."""
    if deployment_mode == STANDARD:
        return f'{names.deployment_label}="isvc.{target.revision}"'
    return f'{names.revision_label}="{target.revision}"'


def revision_numbers(
    prometheus: Prometheus,
    names: MetricNames,
    target: TrafficTarget,
    deployment_mode: str = SERVERLESS,
) -> RevisionNumbers:
    selector = pod_selector(names, target, deployment_mode)
    requests_selector = ",".join(filter(None, (selector, names.request_filter)))
    errors_selector = f'{requests_selector},{names.status_label}=~"{names.error_status_regex}"'
    window = names.window
    requests = prometheus.value(f"sum(increase({names.requests_counter}{{{requests_selector}}}[{window}]))")
    errors = prometheus.value(f"sum(increase({names.requests_counter}{{{errors_selector}}}[{window}]))")
    p95 = prometheus.value(
        f"histogram_quantile(0.95, sum by (le) (rate({names.latency_histogram}_bucket{{{selector}}}[{window}])))"
    )
    requests = 0.0 if math.isnan(requests) else requests
    if requests > 0:
        error_rate = 0.0 if math.isnan(errors) else errors / requests  # no error series: no errors
    else:
        error_rate = math.nan
    return RevisionNumbers(target.revision, target.percent, requests, error_rate, p95)


def probe_labels(
    url: str,
    model_name: str,
    texts: tuple[str, ...] | list[str],
    *,
    ingress_url: str | None = None,
    token: str | None = None,
    timeout_s: float = 30.0,
    batch_size: int = 16,
) -> list[str]:
    """Labels one revision gives the texts, through the V1 protocol, in order.

    Args:
        url: the revision's tag URL (``status.components.predictor.traffic[].url``).
        ingress_url: when the tag URL's host does not resolve from here, the ingress gateway to
            send to instead, with the tag URL's host as the ``Host`` header.
        token: a JWT for ``Authorization: Bearer``; the gateways refuse anonymous calls and allow tag
            routes only to the rollout identity (manifests/auth).
    """
    host = urllib.parse.urlsplit(http_url(url, "the tag URL")).netloc
    base = http_url(ingress_url or url, "the ingress URL").rstrip("/")
    headers = {"Content-Type": "application/json", "Host": host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    labels: list[str] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        request = urllib.request.Request(
            f"{base}/v1/models/{model_name}:predict",
            data=json.dumps({"instances": chunk}).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                predictions = json.load(response)["predictions"]
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as e:
            raise AnalysisError(f"probe request to {url} (via {base}) failed: {e}") from e
        if len(predictions) != len(chunk):
            raise AnalysisError(f"{url} answered {len(predictions)} predictions for {len(chunk)} texts")
        labels.extend(str(p["label"]) for p in predictions)
    return labels


def analyze(
    status: RolloutStatus,
    prometheus: Prometheus,
    *,
    rules: CanaryRules | None = None,
    names: MetricNames | None = None,
    probes: tuple[str, ...] | list[str] | None = None,
    model_name: str | None = None,
    ingress_url: str | None = None,
    token: str | None = None,
) -> Verdict:
    """Gather the numbers for both revisions and decide. Acting on the verdict is the caller's.

    ``probes``: the texts both revisions label; None: the canary model's own probe texts; empty: no probes.
    """
    rules = rules or CanaryRules()
    names = names or MetricNames()
    canary_target, previous_target = canary_targets(status)
    canary = revision_numbers(prometheus, names, canary_target, status.deployment_mode)
    previous = revision_numbers(prometheus, names, previous_target, status.deployment_mode)
    agreement = None
    if probes is None:
        probes = model_probe_texts(canary_model_uri(status, canary_target))
    if probes:
        if not canary_target.url or not previous_target.url:
            raise AnalysisError(
                f"InferenceService {status.namespace}/{status.name} reports no per-revision URLs: add the "
                'annotation serving.kserve.io/enable-tag-routing: "true", or turn probes off'
            )
        model_name = model_name or status.name
        canary_labels = probe_labels(canary_target.url, model_name, probes, ingress_url=ingress_url, token=token)
        previous_labels = probe_labels(previous_target.url, model_name, probes, ingress_url=ingress_url, token=token)
        agreement = (sum(a == b for a, b in zip(canary_labels, previous_labels)), len(probes))
    return decide(canary, previous, rules, agreement)
