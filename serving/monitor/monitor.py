"""The drift monitor's state: sliding windows of live traffic, drift against the reference, alerts.

Memory is bounded whatever the traffic: each window keeps the small features of its last
``window_size`` texts / predictions (never the texts), request and response halves that wait
for their pair are capped at ``max_pending``, and at most ``max_samples`` recent paired
samples (texts cut to :data:`SAMPLE_CHARS`) are kept for W&B.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from textclf.profile import TextFeatures, bin_index, text_features
from textclf import drift
from serving.monitor.events import InferenceEvent, MalformedEvent, Prediction, predictions_from_response, texts_from_request

log = logging.getLogger("serving.monitor")

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
SAMPLE_CHARS = 200
# An active alert resolves only once its metric is back under this share of the threshold, so a
# value hovering at the threshold does not raise a new alert on every other event.
RESOLVE_RATIO = 0.8


@dataclass
class MonitorConfig:
    """How much traffic the monitor looks at and when it alerts.

    Attributes:
        window_size: texts (and predictions) in each sliding window.
        min_samples: no alert before a window holds this many; small windows are noisy.
        max_pending: request/response halves kept while waiting for their pair; the oldest go first.
        max_samples: recent paired samples kept for W&B.
        thresholds: metric name -> value above which it alerts (see :data:`METRICS`).
    """

    window_size: int = 1000
    min_samples: int = 200
    max_pending: int = 1000
    max_samples: int = 50
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))

    def __post_init__(self):
        unknown = set(self.thresholds) - set(METRICS)
        if unknown:
            raise ValueError(f"unknown drift metrics {sorted(unknown)}; known: {list(METRICS)}")
        if not 0 < self.min_samples <= self.window_size:
            raise ValueError(f"min_samples must be in 1..window_size ({self.window_size}), got {self.min_samples}")
        if self.max_pending < 1 or self.max_samples < 0:
            raise ValueError("max_pending must be >= 1 and max_samples >= 0")


@dataclass(frozen=True)
class AlertChange:
    """A metric crossed its threshold (``active``) or came back under it."""

    metric: str
    value: float | None
    threshold: float
    window: int
    active: bool


def _count(counter: Counter, key: str, sign: int) -> None:
    counter[key] += sign
    if not counter[key]:
        del counter[key]  # keeps the counter as small as the window's distinct values


class _SlidingWindow:
    """The last ``size`` observations with running aggregates: O(1) per observation."""

    def __init__(self, size: int):
        self.size = size
        self._items: deque = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item) -> None:
        if len(self._items) >= self.size:
            self._apply(self._items.popleft(), -1)
        self._items.append(item)
        self._apply(item, 1)

    def _apply(self, item, sign: int) -> None:
        raise NotImplementedError


class TextWindow(_SlidingWindow):
    """Token-length histogram, unknown tokens, ASCII characters and scripts of recent texts."""

    def __init__(self, size: int, length_edges: list[float]):
        super().__init__(size)
        self.length_edges = length_edges
        self.length_counts = [0] * (len(length_edges) - 1)
        self.scripts: Counter = Counter()
        self.tokens = self.unknown = self.ascii = self.chars = 0

    def add(self, item: TextFeatures) -> None:
        super().add((bin_index(self.length_edges, item.n_tokens), item))

    def _apply(self, item: tuple[int, TextFeatures], sign: int) -> None:
        length_bin, f = item
        self.length_counts[length_bin] += sign
        _count(self.scripts, f.script, sign)
        self.tokens += sign * f.n_tokens
        self.unknown += sign * f.n_unknown
        self.ascii += sign * f.n_ascii
        self.chars += sign * f.n_chars


class PredictionWindow(_SlidingWindow):
    """Score histogram and label counts of recent predictions."""

    def __init__(self, size: int, score_edges: list[float]):
        super().__init__(size)
        self.score_edges = score_edges
        self.score_counts = [0] * (len(score_edges) - 1)
        self.labels: Counter = Counter()

    def add(self, item: Prediction) -> None:
        super().add((bin_index(self.score_edges, item.score), item.label))

    def _apply(self, item: tuple[int, str], sign: int) -> None:
        score_bin, label = item
        self.score_counts[score_bin] += sign
        _count(self.labels, label, sign)


class DriftMonitor:
    """Feeds logged events into sliding windows and compares them with a reference profile.

    Args:
        profile: a reference profile (``textclf.profile.load_profile``).
        tokenizer: the model's tokenizer, to measure live texts the way the profile did.
        config: window sizes and thresholds.
    """

    def __init__(self, profile: dict[str, Any], tokenizer, config: MonitorConfig | None = None):
        self.profile = profile
        self.tokenizer = tokenizer
        self.config = config or MonitorConfig()
        self.label_names = list(profile["label_names"])
        self.texts = TextWindow(self.config.window_size, profile["tokens"]["edges"])
        self.predictions = PredictionWindow(self.config.window_size, profile["score"]["edges"])
        self.pending: OrderedDict[tuple[str, str], tuple[str, list]] = OrderedDict()
        self.samples: deque = deque(maxlen=self.config.max_samples)
        self.events: Counter = Counter()  # accepted events by kind, plus paired / unpaired_evicted
        self.rejected: Counter = Counter()  # by reason
        self.active_alerts: set[str] = set()
        self.alerts_raised: Counter = Counter()

    def reject(self, reason: str) -> None:
        """Count an event that never reached :meth:`ingest` (unreadable, too large...)."""
        self.rejected[reason] += 1

    def ingest(self, event: InferenceEvent) -> list[AlertChange]:
        """Add one logged request or response to the windows and re-evaluate the alerts.

        The event is checked in full before anything changes, so a bad one leaves no trace.

        Raises:
            MalformedEvent: its payload holds no usable texts / predictions (counted as rejected).
        """
        try:
            if event.kind == "request":
                texts = texts_from_request(event.payload)
                items: list = text_features(texts, self.tokenizer)
                window, sample_half = self.texts, [t[:SAMPLE_CHARS] for t in texts[: self.config.max_samples]]
            else:
                items = predictions_from_response(event.payload)
                unknown = {p.label for p in items} - set(self.label_names)
                if unknown:
                    raise MalformedEvent("unknown_label", f"labels {sorted(unknown)} are not in the profile's {self.label_names}")
                window, sample_half = self.predictions, items[: self.config.max_samples]
        except MalformedEvent as err:
            self.reject(err.reason)
            raise
        for item in items:
            window.add(item)
        self.events[event.kind] += 1
        self._pair(event, sample_half)
        return self.evaluate()

    def _pair(self, event: InferenceEvent, half: list) -> None:
        """Join a request with its response (same ce-id, same service) into samples for W&B."""
        key = (event.inference_service, event.id)
        other = self.pending.pop(key, None)
        if other is None or other[0] == event.kind:
            self.pending[key] = (event.kind, half)  # a repeated half replaces the older one
            while len(self.pending) > self.config.max_pending:
                self.pending.popitem(last=False)
                self.events["unpaired_evicted"] += 1
            return
        texts, predictions = (half, other[1]) if event.kind == "request" else (other[1], half)
        self.events["paired"] += 1
        for text, prediction in zip(texts, predictions):
            self.samples.append({"id": event.id, "text": text, "label": prediction.label, "score": prediction.score})

    def metrics(self) -> dict[str, float | None]:
        """Every drift metric against the reference; None where a window is still empty."""
        ref = self.profile
        t, p = self.texts, self.predictions
        ref_labels = [ref["labels"]["predicted_share"].get(name, 0.0) for name in self.label_names]
        live_labels = [p.labels[name] for name in self.label_names]
        scripts = drift.align(ref["charset"]["script_share"], t.scripts)
        return {
            "score_psi": drift.psi(ref["score"]["counts"], p.score_counts),
            "score_js": drift.js_divergence(ref["score"]["counts"], p.score_counts),
            "length_psi": drift.psi(ref["tokens"]["counts"], t.length_counts),
            "length_js": drift.js_divergence(ref["tokens"]["counts"], t.length_counts),
            "label_share_shift": drift.total_variation(ref_labels, live_labels),
            "unknown_token_rate_increase": t.unknown / t.tokens - ref["unknown_token_rate"] if t.tokens else None,
            "ascii_share_drop": ref["charset"]["ascii_share"] - t.ascii / t.chars if t.chars else None,
            "script_js": drift.js_divergence(*scripts),
        }

    def _window_for(self, metric: str) -> int:
        return len(self.predictions) if metric.startswith(("score", "label")) else len(self.texts)

    def evaluate(self) -> list[AlertChange]:
        """Compare every thresholded metric with its threshold; log and return the changes."""
        values = self.metrics()
        changes = []
        for metric, threshold in self.config.thresholds.items():
            window = self._window_for(metric)
            value = values[metric]
            limit = threshold * RESOLVE_RATIO if metric in self.active_alerts else threshold
            active = window >= self.config.min_samples and value is not None and value > limit
            if active == (metric in self.active_alerts):
                continue
            change = AlertChange(metric, value, threshold, window, active)
            if active:
                self.active_alerts.add(metric)
                self.alerts_raised[metric] += 1
                log.warning("DRIFT ALERT %s=%.4f > %.4f over the last %d", metric, value, threshold, window)
            else:
                self.active_alerts.discard(metric)
                log.info("drift resolved: %s=%s <= %.4f over the last %d", metric, value, limit, window)
            changes.append(change)
        return changes

    def report(self) -> dict[str, Any]:
        """JSON summary: metrics, thresholds, active alerts, live vs reference, event counts."""
        t, p, ref = self.texts, self.predictions, self.profile
        return {
            "metrics": self.metrics(),
            "thresholds": dict(self.config.thresholds),
            "alerts": sorted(self.active_alerts),
            "window": {"texts": len(t), "predictions": len(p), "size": self.config.window_size, "min_samples": self.config.min_samples},
            "live": {
                "label_share": {n: p.labels[n] / len(p) for n in self.label_names} if len(p) else None,
                "tokens_mean": t.tokens / len(t) if len(t) else None,
                "unknown_token_rate": t.unknown / t.tokens if t.tokens else None,
                "ascii_share": t.ascii / t.chars if t.chars else None,
                "script_share": {s: c / len(t) for s, c in t.scripts.most_common()} if len(t) else None,
            },
            "reference": {
                "label_share": ref["labels"]["predicted_share"],
                "tokens_mean": ref["tokens"]["mean"],
                "unknown_token_rate": ref["unknown_token_rate"],
                "ascii_share": ref["charset"]["ascii_share"],
                "script_share": ref["charset"]["script_share"],
            },
            "events": {"accepted": dict(self.events), "rejected": dict(self.rejected), "pending": len(self.pending)},
            "alerts_raised": dict(self.alerts_raised),
        }


def parse_thresholds(items: Iterable[str]) -> dict[str, float]:
    """``["score_psi=0.3", "script_js=off"]`` -> the default thresholds with these changes."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in METRICS:
            raise ValueError(f"threshold {item!r} must be NAME=VALUE with NAME in {list(METRICS)}")
        if value == "off":
            thresholds.pop(name, None)
        else:
            thresholds[name] = float(value)
    return thresholds
