"""The canary verdict: promote, roll back or hold, from the numbers of the canary and of the model it would replace.

The rule fails closed: a comparison with a missing number (NaN) fails, any failed check rolls
back, and too little canary traffic gives no verdict at all (``hold``). Where the numbers come
from (Prometheus, probe calls through the ingress) is ``serving/rollout/analysis.py``'s; this
module decides on them, and can be tested without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from textclf.inferenceservice import STANDARD
from textclf.rollout.errors import AnalysisError, NoCanaryError
from textclf.rollout.status import RolloutStatus, TrafficTarget
from textclf.settings import setting


@dataclass
class CanaryRules:
    """When a canary is good enough to promote."""

    min_requests: int = setting(100, "Canary requests in the window needed before any verdict.")
    max_error_rate_increase: float = setting(0.01, "Allowed canary error rate minus previous error rate (absolute).")
    max_p95_ratio: float = setting(1.25, "Allowed canary p95 / previous p95 (plus p95_slack_s).")
    p95_slack_s: float = setting(
        0.010, "Absolute p95 slack in seconds, so millisecond noise on fast servers is no regression."
    )
    min_probe_agreement: float = setting(0.95, "Share of probe texts that must get the same label from both revisions.")


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
    checks.append(
        Check(
            "error rate",
            increase <= rules.max_error_rate_increase,  # False for NaN: no number, no pass
            f"canary {_pct(canary.error_rate)}, previous {_pct(previous.error_rate)}, "
            f"increase {_pct(increase)} (max {_pct(rules.max_error_rate_increase)})",
        )
    )
    limit = previous.p95_s * rules.max_p95_ratio + rules.p95_slack_s
    checks.append(
        Check(
            "p95 latency",
            canary.p95_s <= limit,
            f"canary {_ms(canary.p95_s)}, previous {_ms(previous.p95_s)}, limit {_ms(limit)} "
            f"({rules.max_p95_ratio:g} x previous + {_ms(rules.p95_slack_s)})",
        )
    )
    if agreement is None:
        checks.append(Check("probe labels", True, "not checked (probes turned off)"))
    else:
        same, total = agreement
        share = same / total if total else math.nan
        checks.append(
            Check(
                "probe labels",
                share >= rules.min_probe_agreement,
                f"{same}/{total} texts labelled the same = {_pct(share)} (min {_pct(rules.min_probe_agreement)})",
            )
        )
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
        raise AnalysisError(
            f"the canary's model URI is not in the InferenceService, so its probe texts are unknown: {instead}"
        )
    try:
        rows = read_probe_texts_at(model_uri)
    except (OSError, ValueError) as error:
        raise AnalysisError(
            f"cannot read the probe texts of the canary's model {model_uri}: {error}; {instead}"
        ) from error
    if not rows:
        raise AnalysisError(
            f"the canary's model {model_uri} has no {PROBE_FILE} (trained before models carried "
            f"their probe texts): {instead}"
        )
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


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{1000 * seconds:.1f} ms"
