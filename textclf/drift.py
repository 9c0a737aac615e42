"""Drift: distances between a reference distribution and a live one, and when they raise an alert.

The distances take counts (or shares: they are normalised first) and return None when either
side is empty, so an empty window reads as "no data yet", never as "no drift". The alerting rule
(:class:`DriftAlerts`, :func:`over_threshold`) is what the drift monitor (``serving/monitor``)
and the scheduled drift check apply to those numbers; it needs no server to be tested.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# Metric names, in report order. A metric with a threshold raises an alert above it.
METRICS = (
    "score_psi",
    "score_js",
    "length_psi",
    "length_js",
    "label_share_shift",
    "unknown_token_rate_increase",
    "ascii_share_drop",
    "script_js",
)
DEFAULT_THRESHOLDS = {
    "score_psi": 0.2,  # PSI > 0.2: the usual "significant shift"
    "length_psi": 0.2,
    "label_share_shift": 0.2,  # total variation: 20 points of traffic moved between labels
    "unknown_token_rate_increase": 0.02,
    "ascii_share_drop": 0.1,
    "script_js": 0.1,
}
# An active alert resolves only once its metric is back under this share of the threshold, so a
# value hovering at the threshold does not raise a new alert on every other event.
RESOLVE_RATIO = 0.8

# Shares are floored at this value in PSI so an empty bin on one side gives a large but finite
# value (ln(share / 0) is infinite); it only matters for bins that one side never fills.
PSI_EPSILON = 1e-4


def shares(counts: Sequence[float]) -> list[float] | None:
    """Counts normalised to sum to 1; None when they sum to 0."""
    total = float(sum(counts))
    if total <= 0:
        return None
    return [c / total for c in counts]


def _pair(reference: Sequence[float], current: Sequence[float]) -> tuple[list[float], list[float]] | None:
    if len(reference) != len(current):
        raise ValueError(f"distributions have {len(reference)} and {len(current)} bins")
    p, q = shares(reference), shares(current)
    return None if p is None or q is None else (p, q)


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = PSI_EPSILON) -> float | None:
    """Population stability index: sum over bins of (q - p) * ln(q / p).

    Rule of thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.
    """
    pair = _pair(reference, current)
    if pair is None:
        return None
    return sum((max(q, epsilon) - max(p, epsilon)) * math.log(max(q, epsilon) / max(p, epsilon)) for p, q in zip(*pair))


def js_divergence(reference: Sequence[float], current: Sequence[float]) -> float | None:
    """Jensen-Shannon divergence in bits: 0 for identical distributions, 1 for disjoint ones.

    scipy returns the Jensen-Shannon *distance*, the square root of the divergence.
    """
    from scipy.spatial.distance import jensenshannon

    pair = _pair(reference, current)
    if pair is None:
        return None
    return max(0.0, float(jensenshannon(*pair, base=2)) ** 2)


def total_variation(reference: Sequence[float], current: Sequence[float]) -> float | None:
    """Half the L1 distance between shares: the largest change in any group of labels' share."""
    pair = _pair(reference, current)
    if pair is None:
        return None
    return sum(abs(a - b) for a, b in zip(*pair)) / 2


def align(reference: Mapping[str, float], current: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Two categorical distributions as aligned lists over the union of their categories."""
    keys = sorted(set(reference) | set(current))
    return [reference.get(k, 0.0) for k in keys], [current.get(k, 0.0) for k in keys]


def window_of(metric: str) -> str:
    """The window a metric is measured on: ``"predictions"`` (scores, labels) or ``"texts"``."""
    return "predictions" if metric.startswith(("score", "label")) else "texts"


def check_thresholds(thresholds: Mapping[str, float]) -> None:
    """Raise ValueError naming the thresholds of metrics that do not exist."""
    unknown = set(thresholds) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown drift metrics {sorted(unknown)}; known: {list(METRICS)}")


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """``["score_psi=0.3", "script_js=off"]`` -> the default thresholds with these changes.

    Raises:
        ValueError: an item is not ``NAME=VALUE`` with a known NAME and a number (or ``off``).
    """
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in METRICS:
            raise ValueError(f"threshold {item!r} must be NAME=VALUE with NAME in {list(METRICS)}")
        if value == "off":
            thresholds.pop(name, None)
        else:
            try:
                thresholds[name] = float(value)
            except ValueError:
                raise ValueError(f"threshold {item!r}: {value!r} is neither a number nor 'off'") from None
    return thresholds


def over_threshold(
    metrics: Mapping[str, float | None], windows: Mapping[str, int], min_samples: int, thresholds: Mapping[str, float]
) -> dict[str, float]:
    """The metrics above their threshold, counting only those whose window holds ``min_samples``
    (small windows are noisy); ``windows`` gives the ``"texts"`` and ``"predictions"`` counts."""
    judged = {
        name: value
        for name in thresholds
        if windows[window_of(name)] >= min_samples and (value := metrics.get(name)) is not None
    }
    return {name: value for name, value in judged.items() if value > thresholds[name]}


@dataclass(frozen=True)
class AlertChange:
    """A metric crossed its threshold (``active``) or came back under it."""

    metric: str
    value: float | None
    threshold: float
    window: int
    active: bool


class DriftAlerts:
    """Which metrics are in alert: a metric raises one above its threshold (once its window holds
    ``min_samples``) and resolves only under ``RESOLVE_RATIO`` of it (hysteresis).

    Args:
        thresholds: metric name -> value above which it alerts (names from :data:`METRICS`).
        min_samples: no alert before a metric's window holds this many.
    """

    def __init__(self, thresholds: Mapping[str, float], min_samples: int):
        check_thresholds(thresholds)
        self.thresholds, self.min_samples = dict(thresholds), min_samples
        self.active: set[str] = set()
        self.raised: Counter = Counter()  # alerts raised per metric since the start

    def update(self, metrics: Mapping[str, float | None], windows: Mapping[str, int]) -> list[AlertChange]:
        """Compare every thresholded metric with its threshold; returns the alerts raised and resolved."""
        changes = []
        for metric, threshold in self.thresholds.items():
            window, value = windows[window_of(metric)], metrics[metric]
            limit = threshold * RESOLVE_RATIO if metric in self.active else threshold
            active = window >= self.min_samples and value is not None and value > limit
            if active == (metric in self.active):
                continue
            if active:
                self.active.add(metric)
                self.raised[metric] += 1
            else:
                self.active.discard(metric)
            changes.append(AlertChange(metric, value, threshold, window, active))
        return changes
