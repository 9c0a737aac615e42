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

The rule fails closed: a comparison with a missing number fails, any failed check rolls back, and
too little canary traffic gives no verdict at all (``hold``).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from textclf.inferenceservice import SERVERLESS, STANDARD
from textclf.rollout.errors import AnalysisError, NoCanaryError
from textclf.settings import setting
from textclf.rollout.operations import RolloutStatus, TrafficTarget

@dataclass
class CanaryRules:
    """When a canary is good enough to promote."""

    min_requests: int = setting(100, "Canary requests in the window needed before any verdict.")
    max_error_rate_increase: float = setting(0.01, "Allowed canary error rate minus previous error rate (absolute).")
    max_p95_ratio: float = setting(1.25, "Allowed canary p95 / previous p95 (plus p95_slack_s).")
    p95_slack_s: float = setting(0.010, "Absolute p95 slack in seconds, so millisecond noise on fast servers is no regression.")
    min_probe_agreement: float = setting(0.95, "Share of probe texts that must get the same label from both revisions.")


@dataclass
class MetricNames:
    """The PromQL names: the server's metrics and the labels that tell the canary's pods apart.

    The default labels are what Prometheus's usual pod scrape job (``labelmap`` of
    ``__meta_kubernetes_pod_label_(.+)``) makes of the pod labels ``serving.knative.dev/revision``
    (Serverless) and ``app`` (Standard, value ``isvc.<predictor Deployment>``).
    """

    requests_counter: str = setting("textclf_http_requests_total", "Counter of HTTP requests by endpoint and code.")
    request_filter: str = setting('endpoint=~"v1_predict|v2_infer"', "Label filter for inference requests "
                                  "(health checks and scrapes are no traffic).")
    status_label: str = setting("code", "Label holding the HTTP status code.")
    error_status_regex: str = setting("5..", "Status codes that count as errors.")
    latency_histogram: str = setting("request_predict_seconds", "Histogram of predict latency (kserve's).")
    revision_label: str = setting("serving_knative_dev_revision", "Label holding the Knative revision (Serverless mode).")
    deployment_label: str = setting("app", "Label holding the pod label app=isvc.<predictor Deployment> (Standard mode).")
    window: str = setting("10m", "PromQL range the numbers are taken over.")


@dataclass
class RevisionNumbers:
    revision: str
    percent: int
    requests: float
    error_rate: float
    p95_s: float


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Verdict:
    """The decision and everything it was based on."""

    action: str  # "promote" | "rollback" | "hold"
    canary: RevisionNumbers
    previous: RevisionNumbers
    checks: list[Check] = field(default_factory=list)

    def describe(self) -> str:
        failed = [c.name for c in self.checks if not c.passed]
        lines = [
            f"canary {self.canary.revision} ({self.canary.percent}%) vs previous "
            f"{self.previous.revision} ({self.previous.percent}%)",
            *(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<14} {c.detail}" for c in self.checks),
            f"decision: {self.action.upper()}" + (f" (failed: {', '.join(failed)})" if failed else ""),
        ]
        return "\n".join(lines)


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
    prometheus: Prometheus, names: MetricNames, target: TrafficTarget, deployment_mode: str = SERVERLESS,
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
    url: str, model_name: str, texts: tuple[str, ...] | list[str], *, ingress_url: str | None = None,
    token: str | None = None, timeout_s: float = 30.0, batch_size: int = 16,
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
        chunk = list(texts[start:start + batch_size])
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


def decide(
    canary: RevisionNumbers,
    previous: RevisionNumbers,
    rules: CanaryRules,
    agreement: tuple[int, int] | None,
) -> Verdict:
    """Apply the rules; ``agreement`` is (same labels, probe texts), or None when probes were not run."""
    checks = [
        Check(
            "traffic",
            canary.requests >= rules.min_requests,
            f"canary {canary.requests:.0f} requests, previous {previous.requests:.0f} "
            f"(a verdict needs >= {rules.min_requests} on the canary)",
        )
    ]
    if not checks[0].passed:
        return Verdict("hold", canary, previous, checks)

    increase = canary.error_rate - previous.error_rate
    checks.append(Check(
        "error rate",
        increase <= rules.max_error_rate_increase,  # False for NaN: no number, no pass
        f"canary {_pct(canary.error_rate)}, previous {_pct(previous.error_rate)}, "
        f"increase {_pct(increase)} (max {_pct(rules.max_error_rate_increase)})",
    ))
    limit = previous.p95_s * rules.max_p95_ratio + rules.p95_slack_s
    checks.append(Check(
        "p95 latency",
        canary.p95_s <= limit,
        f"canary {_ms(canary.p95_s)}, previous {_ms(previous.p95_s)}, limit {_ms(limit)} "
        f"({rules.max_p95_ratio:g} x previous + {_ms(rules.p95_slack_s)})",
    ))
    if agreement is None:
        checks.append(Check("probe labels", True, "not checked (probes turned off)"))
    else:
        same, total = agreement
        share = same / total if total else math.nan
        checks.append(Check(
            "probe labels",
            share >= rules.min_probe_agreement,
            f"{same}/{total} texts labelled the same = {_pct(share)} (min {_pct(rules.min_probe_agreement)})",
        ))
    action = "promote" if all(c.passed for c in checks) else "rollback"
    return Verdict(action, canary, previous, checks)


def canary_model_uri(status: RolloutStatus, canary: TrafficTarget) -> str | None:
    """The storage URI of the model the canary serves: its own predictor's (Standard), or ``spec.predictor``'s
    (Serverless, whose latest revision is the canary)."""
    return canary.model_uri or status.model_uri


def model_probe_texts(model_uri: str | None) -> tuple[str, ...]:
    """The probe texts stored with a model (``textclf.probe``), read through the storage module.

    Raises:
        AnalysisError: no model URI, an unreadable one, or a model without probe texts; the message says
            to pass ``--probes FILE`` or ``--no-probes`` instead.
    """
    from textclf.probe import PROBE_FILE, read_probe_texts_at

    instead = "pass --probes FILE (one text a line) or --no-probes"
    if not model_uri:
        raise AnalysisError(f"the canary's model URI is not in the InferenceService, so its probe texts are unknown: {instead}")
    try:
        rows = read_probe_texts_at(model_uri)
    except (OSError, ValueError) as error:
        raise AnalysisError(f"cannot read the probe texts of the canary's model {model_uri}: {error}; {instead}") from error
    if not rows:
        raise AnalysisError(f"the canary's model {model_uri} has no {PROBE_FILE} (trained before models carried "
                            f"their probe texts): {instead}")
    return tuple(row["text"] for row in rows)


def canary_targets(status: RolloutStatus) -> tuple[TrafficTarget, TrafficTarget]:
    """The (canary, previous) traffic targets of an InferenceService in the middle of a canary."""
    where = f"InferenceService {status.namespace}/{status.name}"
    field_name = "spec.canary" if status.deployment_mode == STANDARD else "canaryTrafficPercent"
    if status.canary_percent is None:
        raise NoCanaryError(f"{where} has no canary in progress (no {field_name})")
    if status.canary_percent == 0:
        raise NoCanaryError(f"{where} has its canary at 0% ({field_name} 0): rolled back")
    latest = [t for t in status.traffic if t.latest]
    previous = [t for t in status.traffic if not t.latest and t.percent > 0]
    if len(latest) != 1 or len(previous) != 1:
        raise NoCanaryError(
            f"{where} does not split traffic between a canary and one previous model yet: "
            f"{status.traffic or 'no traffic reported'}"
        )
    return latest[0], previous[0]


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
                "annotation serving.kserve.io/enable-tag-routing: \"true\", or turn probes off"
            )
        model_name = model_name or status.name
        canary_labels = probe_labels(canary_target.url, model_name, probes, ingress_url=ingress_url, token=token)
        previous_labels = probe_labels(previous_target.url, model_name, probes, ingress_url=ingress_url, token=token)
        agreement = (sum(a == b for a, b in zip(canary_labels, previous_labels)), len(probes))
    return decide(canary, previous, rules, agreement)


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{1000 * seconds:.1f} ms"
