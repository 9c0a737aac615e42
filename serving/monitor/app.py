"""The monitor's HTTP face: KServe logger events in, ``/drift`` JSON and Prometheus ``/metrics`` out.

Routes:
    POST /          CloudEvents from KServe's logger (the ``logger.url`` of an InferenceService).
    GET  /drift     JSON report (``DriftMonitor.report``).
    GET  /metrics   Prometheus text format.
    GET  /healthz   liveness / readiness.

Malformed events get a 4xx with ``{"error": ...}`` and are counted by reason; nothing a client
sends can stop the server. Bodies over ``max_body_bytes`` are refused before being read in full.

No event is decoded on the event loop: at most ``max_queued_events`` events are read at once
(the others wait unread, so memory holds at most that many bodies), one worker thread decodes,
validates, samples and measures them (:meth:`DriftMonitor.prepare`), and the loop only applies
the small result. ``/healthz``, ``/drift`` and ``/metrics`` never wait behind an event: the
longest the loop can be held is one JSON parse of a ``max_body_bytes`` body (~0.1 s for 8 MB).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from serving.memory import release_after
from serving.monitor.events import MalformedEvent, parse_event
from serving.monitor.monitor import DriftMonitor, Observation
from textclf.drift import AlertChange

log = logging.getLogger("serving.monitor")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
# Events read and decoded at once; more only queue (unread) for the one decoding thread.
DEFAULT_MAX_QUEUED_EVENTS = 4
# A sender that takes longer than this to send one body is cut off (408), so a slow one cannot
# hold a reading slot for ever.
BODY_TIMEOUT_S = 30.0


class BodyTooLarge(Exception):
    pass


class MonitorCollector:
    """Prometheus view of a :class:`DriftMonitor`, read at scrape time (no second copy of the state)."""

    def __init__(self, monitor: DriftMonitor):
        self.monitor = monitor

    def collect(self):
        m = self.monitor
        drift = GaugeMetricFamily(
            "textclf_drift", "Drift of live traffic against the reference profile (NaN: no data)", labels=["metric"]
        )
        for name, value in m.metrics().items():
            drift.add_metric([name], math.nan if value is None else value)
        yield drift
        threshold = GaugeMetricFamily(
            "textclf_drift_threshold", "Alert threshold of each drift metric", labels=["metric"]
        )
        alert = GaugeMetricFamily(
            "textclf_drift_alert", "1 while the drift metric is over its threshold", labels=["metric"]
        )
        for name, value in m.config.thresholds.items():
            threshold.add_metric([name], value)
            alert.add_metric([name], float(name in m.active_alerts))
        yield threshold
        yield alert
        raised = CounterMetricFamily("textclf_drift_alerts", "Alerts raised", labels=["metric"])
        for name in m.config.thresholds:
            raised.add_metric([name], m.alerts_raised[name])
        yield raised
        window = GaugeMetricFamily(
            "textclf_drift_window_samples", "Observations in the sliding window", labels=["window"]
        )
        window.add_metric(["texts"], len(m.texts))
        window.add_metric(["predictions"], len(m.predictions))
        yield window
        events = CounterMetricFamily(
            "textclf_monitor_events", "Logger events accepted (and pairing outcomes)", labels=["kind"]
        )
        for kind, count in sorted(m.events.items()):
            events.add_metric([kind], count)
        yield events
        rejected = CounterMetricFamily(
            "textclf_monitor_events_rejected", "Logger events refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(m.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (:class:`BodyTooLarge`) from its Content-Length or once over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


def _error(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "reason": reason}, status_code=status)


def _decoder(monitor: DriftMonitor):
    def decode(headers: Mapping[str, str], body: bytes) -> Observation:
        try:
            return monitor.prepare(parse_event(headers, body))  # the decoded payload is freed on return
        finally:
            release_after(len(body))

    return decode


def _webhook(monitor: DriftMonitor, webhook_url: str | None):
    """``notify(change)``: POST the alert change to ``webhook_url`` (a failure is logged and counted)."""

    async def notify(change: AlertChange) -> None:
        state = "DRIFT ALERT" if change.active else "drift resolved"
        payload: dict[str, Any] = {
            "text": f"{state}: {change.metric}={change.value} (threshold {change.threshold}, window {change.window})",
            **dataclasses.asdict(change),
        }
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                (await client.post(webhook_url, json=payload)).raise_for_status()
        except httpx.HTTPError as err:
            monitor.events["webhook_failed"] += 1
            log.error("alert webhook %s failed: %s", webhook_url, err)

    return notify


def _reader(monitor: DriftMonitor, max_body_bytes: int, reading: asyncio.Semaphore, worker: ThreadPoolExecutor):
    """``observe(request)``: read and decode one event off the loop, at most ``reading``'s count at
    once; an error response for a bad one (counted)."""
    decode = _decoder(monitor)

    async def observe(request: Request) -> Observation | JSONResponse:
        async with reading:
            try:
                body = await asyncio.wait_for(_read_body(request, max_body_bytes), BODY_TIMEOUT_S)
            except BodyTooLarge:
                monitor.reject("too_large")
                return _error(413, "too_large", f"event body over {max_body_bytes} bytes")
            except TimeoutError:
                monitor.reject("body_timeout")
                return _error(408, "body_timeout", f"event body not received within {BODY_TIMEOUT_S:.0f} s")
            try:
                return await asyncio.get_running_loop().run_in_executor(worker, decode, dict(request.headers), body)
            except MalformedEvent as err:
                monitor.reject(err.reason)
                return _error(err.status, err.reason, str(err))

    return observe


def create_app(
    monitor: DriftMonitor,
    *,
    webhook_url: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_queued_events: int = DEFAULT_MAX_QUEUED_EVENTS,
    wandb_sink=None,
) -> FastAPI:
    """The FastAPI app around ``monitor``.

    Args:
        monitor: the drift state.
        webhook_url: POSTed a JSON alert (with a ``text`` field, as Slack expects) on every alert change.
        max_body_bytes: larger events get 413.
        max_queued_events: events read and decoded at once (the rest wait unread).
        wandb_sink: optional :class:`serving.monitor.wandb_sink.WandbSink`, given every accepted event.
    """
    if max_queued_events < 1:
        raise ValueError(f"max_queued_events must be >= 1, got {max_queued_events}")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))
    background: set[asyncio.Task] = set()  # strong references, so pending webhooks are not collected
    # One thread: events are measured one at a time (the tokenizer is not thread-safe), and
    # never on the event loop.
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-decode")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        worker.shutdown(wait=False, cancel_futures=True)
        if wandb_sink is not None:
            wandb_sink.close()

    app = FastAPI(title="textclf drift monitor", lifespan=lifespan)

    notify = _webhook(monitor, webhook_url)
    observe = _reader(monitor, max_body_bytes, asyncio.Semaphore(max_queued_events), worker)

    @app.post("/")
    async def receive(request: Request):
        observation = await observe(request)
        if isinstance(observation, JSONResponse):
            return observation
        changes = monitor.apply(observation)
        for change in changes if webhook_url else ():
            task = asyncio.create_task(notify(change))
            background.add(task)
            task.add_done_callback(background.discard)
        if wandb_sink is not None:
            wandb_sink.observe(monitor)
        event = observation.event
        return {"accepted": event.kind, "id": event.id, "sampled": len(observation.items), "total": observation.total}

    @app.get("/drift")
    async def drift_report():
        return monitor.report()

    @app.get("/metrics")
    async def metrics():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    return app
