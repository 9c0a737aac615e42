"""The drift monitor's state: sliding windows of live traffic, drift against the reference, alerts.

One event (one logged call) is one unit of evidence, and no event can decide drift on its own:

- an event with more than ``max_event_texts`` texts is refused (``too_many_texts``): the model
  server refuses such a call too, but KServe logs the request before the server answers;
- of a larger event, a uniform random sample of ``texts_per_event`` texts enters the windows
  (the same positions of the request and of its response, so the pairs stay aligned): one
  event is at most ``texts_per_event / window_size`` of any metric;
- every metric gives each text one vote (``textclf.profile``), so a few very long texts cannot
  outweigh the window either;
- optionally (``source_key``), no caller holds more than ``max_source_share`` of a window.

Work is split so that a large event never holds the server's event loop: :meth:`DriftMonitor.prepare`
(decode, validate, sample, measure: no shared state) runs in a worker thread, and
:meth:`DriftMonitor.apply` (a few dozen counter updates) on the loop.

Memory is bounded whatever the traffic: each window keeps the small features of its last
``window_size`` texts / predictions (never the texts), request and response halves that wait
for their pair are capped at ``max_pending`` (each with at most ``min(texts_per_event,
max_samples)`` texts cut to :data:`SAMPLE_CHARS`), and at most ``max_samples`` recent paired
samples are kept for W&B.
"""

from __future__ import annotations

import json
import logging
import math
import random
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from serving.monitor.events import (
    InferenceEvent,
    MalformedEvent,
    Prediction,
    predictions_from_response,
    texts_from_request,
)
from textclf import drift
from textclf.drift import AlertChange
from textclf.profile import TextFeatures, bin_index, text_features
from textclf.settings import setting

log = logging.getLogger("serving.monitor")

SAMPLE_CHARS = 200


@dataclass
class MonitorConfig:
    """How much traffic the drift monitor looks at and when it alerts (its flags are these fields,
    but for ``thresholds``, which ``--threshold NAME=VALUE`` sets, and ``max_samples``)."""

    LIBRARY_ONLY = ("thresholds", "max_samples")

    window_size: int = setting(1000, "Texts (and predictions) in each sliding window.")
    min_samples: int = setting(200, "No alert before a window holds this many; small windows are noisy.")
    max_pending: int = setting(1000, "Request/response halves kept while waiting for their pair; the oldest go first.")
    max_samples: int = setting(50, "Recent paired samples kept for W&B.")
    thresholds: dict[str, float] = setting(
        dict(drift.DEFAULT_THRESHOLDS), "Metric name -> value above which it alerts (textclf.drift.METRICS)."
    )
    max_event_texts: int = setting(
        128,
        "Events with more texts (or predictions) get 413 too_many_texts; set it to the model server's --max_instances.",
    )
    texts_per_event: int = setting(16, "At most this many texts of one event (a random sample) enter the windows.")
    source_key: str | None = setting(
        None,
        "Cap each caller's share of the windows; the caller is this ce-metadata "
        "key (a request header in the InferenceService's logger.metadataHeaders, e.g. "
        "X-Client-Id, set by something callers cannot forge, such as the ingress after "
        "authentication). Events without it count as one caller. Unset: no cap.",
    )
    max_source_share: float = setting(
        0.25,
        "With source_key: the largest share of a window one caller may hold; "
        "texts over it are left out (counted as source_capped).",
    )

    def __post_init__(self):
        drift.check_thresholds(self.thresholds)
        if not 0 < self.min_samples <= self.window_size:
            raise ValueError(f"min_samples must be in 1..window_size ({self.window_size}), got {self.min_samples}")
        if self.max_pending < 1 or self.max_samples < 0:
            raise ValueError("max_pending must be >= 1 and max_samples >= 0")
        if not 0 < self.texts_per_event <= self.max_event_texts:
            raise ValueError(
                f"texts_per_event must be in 1..max_event_texts ({self.max_event_texts}), got {self.texts_per_event}"
            )
        if self.texts_per_event >= self.min_samples:
            raise ValueError(
                f"texts_per_event ({self.texts_per_event}) must be below min_samples ({self.min_samples}), "
                "or one event could fill an alerting window on its own"
            )
        if not 0 < self.max_source_share <= 1:
            raise ValueError(f"max_source_share must be in (0, 1], got {self.max_source_share}")

    @property
    def source_cap(self) -> int | None:
        """Most texts (or predictions) of one caller in a window; None when callers are not told apart."""
        if self.source_key is None or self.max_source_share >= 1:
            return None
        return max(self.texts_per_event, math.floor(self.max_source_share * self.window_size))


def _count(counter: Counter, key: str, sign: int) -> None:
    counter[key] += sign
    if not counter[key]:
        del counter[key]  # keeps the counter as small as the window's distinct values


class _SlidingWindow:
    """The last ``size`` observations with running aggregates: O(1) per observation.

    Each observation carries the caller it came from, counted in :attr:`sources`.
    """

    def __init__(self, size: int):
        self.size = size
        self._items: deque = deque()
        self.sources: Counter = Counter()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item, source: str = "") -> None:
        if len(self._items) >= self.size:
            old_source, old = self._items.popleft()
            _count(self.sources, old_source, -1)
            self._apply(old, -1)
        item = self._entry(item)
        self._items.append((source, item))
        _count(self.sources, source, 1)
        self._apply(item, 1)

    def _entry(self, item):
        """What the window keeps of an observation (and later subtracts again)."""
        return item

    def _apply(self, item, sign: int) -> None:
        raise NotImplementedError


class TextWindow(_SlidingWindow):
    """Token-length histogram, scripts and per-text unknown-token and ASCII shares of recent texts.

    The shares are summed per text (one vote each, as in the profile): ``unknown_sum / unknown_texts``
    is the mean over texts of each text's unknown tokens / tokens.
    """

    def __init__(self, size: int, length_edges: list[float]):
        super().__init__(size)
        self.length_edges = length_edges
        self.length_counts = [0] * (len(length_edges) - 1)
        self.scripts: Counter = Counter()
        self.tokens = 0
        self.unknown_sum = self.ascii_sum = 0.0
        self.unknown_texts = self.ascii_texts = 0

    def _entry(self, item: TextFeatures) -> tuple[int, TextFeatures]:
        return bin_index(self.length_edges, item.n_tokens), item

    def _apply(self, item: tuple[int, TextFeatures], sign: int) -> None:
        length_bin, f = item
        self.length_counts[length_bin] += sign
        _count(self.scripts, f.script, sign)
        self.tokens += sign * f.n_tokens
        if f.unknown_share is not None:
            self.unknown_sum += sign * f.unknown_share
            self.unknown_texts += sign
        if f.ascii_share is not None:
            self.ascii_sum += sign * f.ascii_share
            self.ascii_texts += sign

    @property
    def unknown_rate(self) -> float | None:
        return max(self.unknown_sum, 0.0) / self.unknown_texts if self.unknown_texts else None

    @property
    def ascii_share(self) -> float | None:
        return max(self.ascii_sum, 0.0) / self.ascii_texts if self.ascii_texts else None


class PredictionWindow(_SlidingWindow):
    """Score histogram and label counts of recent predictions."""

    def __init__(self, size: int, score_edges: list[float]):
        super().__init__(size)
        self.score_edges = score_edges
        self.score_counts = [0] * (len(score_edges) - 1)
        self.labels: Counter = Counter()

    def _entry(self, item: Prediction) -> tuple[int, str]:
        return bin_index(self.score_edges, item.score), item.label

    def _apply(self, item: tuple[int, str], sign: int) -> None:
        score_bin, label = item
        self.score_counts[score_bin] += sign
        _count(self.labels, label, sign)


@dataclass(frozen=True)
class Observation:
    """What one event adds to the monitor, prepared off the event loop by :meth:`DriftMonitor.prepare`.

    Attributes:
        event: the event, without its payload.
        items: the sampled texts' features (request) or predictions (response).
        sample_half: what the W&B samples keep of it (cut texts, or predictions).
        total: texts or predictions in the event before sampling.
        source: the caller (``source_key`` of ``ce-metadata``); "" when not asked for, or for every
            event without it (those count as one caller, so leaving the header out evades no cap).
    """

    event: InferenceEvent
    items: Sequence
    sample_half: list
    total: int
    source: str = ""


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
        self.events: Counter = (
            Counter()
        )  # accepted events by kind, plus paired / unpaired_evicted / sampled / source_capped
        self.rejected: Counter = Counter()  # by reason
        self.alerts = drift.DriftAlerts(self.config.thresholds, self.config.min_samples)
        # Keys the per-event sample: a sender who knows the event id still cannot pick the positions.
        self._sample_key = secrets.token_hex(8)
        # The first computation imports scipy (~1-2 s on a busy machine): now, not on the server's
        # event loop while the first event is applied (/healthz took 1.8 s in the soak's warm-up).
        self.metrics()

    def reject(self, reason: str) -> None:
        """Count an event that never reached the windows (unreadable, too large...)."""
        self.rejected[reason] += 1

    def sample_positions(self, event_id: str, total: int) -> Sequence[int]:
        """The positions of an event that enter the windows: all of them up to ``texts_per_event``,
        else a uniform random sample of that many, the same for the request and response of one call."""
        k = self.config.texts_per_event
        if total <= k:
            return range(total)
        return sorted(random.Random(f"{self._sample_key}/{event_id}/{total}").sample(range(total), k))

    def prepare(self, event: InferenceEvent) -> Observation:
        """Validate, sample and measure one event. Reads no mutable state, so it may run in a
        worker thread (one at a time: the tokenizer is not thread-safe); changes nothing.

        Raises:
            MalformedEvent: no usable texts / predictions, too many, or labels the profile lacks.
        """
        limit = self.config.max_event_texts
        if event.kind == "request":
            texts = texts_from_request(event.payload, limit)
            sampled = [texts[i] for i in self.sample_positions(event.id, len(texts))]
            items: Sequence = text_features(sampled, self.tokenizer)
            half = [t[:SAMPLE_CHARS] for t in sampled[: self.config.max_samples]]
            total = len(texts)
        else:
            predictions = predictions_from_response(event.payload, limit)
            unknown = {p.label for p in predictions} - set(self.label_names)
            if unknown:
                raise MalformedEvent(
                    "unknown_label", f"labels {sorted(unknown)} are not in the profile's {self.label_names}"
                )
            items = [predictions[i] for i in self.sample_positions(event.id, len(predictions))]
            half, total = list(items[: self.config.max_samples]), len(predictions)
        bare = replace(event, payload=None)  # what was sampled is in items/half; the payload stays out
        return Observation(bare, items, half, total, self._source_of(event))

    def _source_of(self, event: InferenceEvent) -> str:
        """The caller named in ``ce-metadata`` under ``source_key`` (KServe: ``{"Header": ["value"]}``)."""
        key = self.config.source_key
        if key is None or not event.metadata:
            return ""
        try:
            metadata = json.loads(event.metadata)
        except ValueError:
            return ""
        values = (
            next((v for k, v in metadata.items() if k.lower() == key.lower()), None)
            if isinstance(metadata, dict)
            else None
        )
        value = values[0] if isinstance(values, list) and values else values
        return str(value)[:200] if value else ""

    def apply(self, observation: Observation) -> list[AlertChange]:
        """Add a prepared event to its window, pair it, and re-evaluate the alerts (fast: at most
        ``texts_per_event`` items). Call it from one thread only (the server's event loop)."""
        event = observation.event
        window = self.texts if event.kind == "request" else self.predictions
        cap = self.config.source_cap
        if cap is not None and window.sources[observation.source] + len(observation.items) > cap:
            self.events["source_capped"] += 1
        else:
            for item in observation.items:
                window.add(item, observation.source)
        self.events[event.kind] += 1
        if observation.total > len(observation.items):
            self.events["sampled"] += 1
        self._pair(event, observation.sample_half)
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
            "unknown_token_rate_increase": None
            if t.unknown_rate is None
            else t.unknown_rate - ref["unknown_token_rate"],
            "ascii_share_drop": None if t.ascii_share is None else ref["charset"]["ascii_share"] - t.ascii_share,
            "script_js": drift.js_divergence(*scripts),
        }

    @property
    def active_alerts(self) -> set[str]:
        return self.alerts.active

    @property
    def alerts_raised(self) -> Counter:
        return self.alerts.raised

    def evaluate(self) -> list[AlertChange]:
        """Re-evaluate the alerts on the current windows (``textclf.drift.DriftAlerts``); log and return the changes."""
        changes = self.alerts.update(self.metrics(), {"texts": len(self.texts), "predictions": len(self.predictions)})
        for change in changes:
            if change.active:
                log.warning(
                    "DRIFT ALERT %s=%.4f > %.4f over the last %d",
                    change.metric,
                    change.value,
                    change.threshold,
                    change.window,
                )
            else:
                log.info(
                    "drift resolved: %s=%s <= %.4f over the last %d",
                    change.metric,
                    change.value,
                    change.threshold * drift.RESOLVE_RATIO,
                    change.window,
                )
        return changes

    def report(self) -> dict[str, Any]:
        """JSON summary: metrics, thresholds, active alerts, live vs reference, event counts."""
        t, p, ref = self.texts, self.predictions, self.profile
        return {
            "metrics": self.metrics(),
            "thresholds": dict(self.config.thresholds),
            "alerts": sorted(self.active_alerts),
            "window": {
                "texts": len(t),
                "predictions": len(p),
                "size": self.config.window_size,
                "min_samples": self.config.min_samples,
            },
            "limits": {
                "max_event_texts": self.config.max_event_texts,
                "texts_per_event": self.config.texts_per_event,
                "source_key": self.config.source_key,
                "max_source_share": self.config.max_source_share,
            },
            "live": {
                "label_share": {n: p.labels[n] / len(p) for n in self.label_names} if len(p) else None,
                "tokens_mean": t.tokens / len(t) if len(t) else None,
                "unknown_token_rate": t.unknown_rate,
                "ascii_share": t.ascii_share,
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
