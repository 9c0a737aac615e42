"""The monitor's HTTP face: KServe logger events in, ``/drift`` JSON and Prometheus ``/metrics`` out.

Routes:
    POST /          CloudEvents from KServe's logger (the ``logger.url`` of an InferenceService).
    GET  /drift     JSON report (``DriftMonitor.report``).
    GET  /metrics   Prometheus text format.
    GET  /healthz   liveness / readiness.

Malformed events get a 4xx with ``{"error": ...}`` and are counted by reason; nothing a client
sends can stop the server. Bodies over ``max_body_bytes`` are refused before being read in full.
"""

from __future__ import annotations

import asyncio
import dataclasses
import contextlib
import logging
import math
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from serving.monitor.events import MalformedEvent, parse_event
from serving.monitor.monitor import AlertChange, DriftMonitor

log = logging.getLogger("serving.monitor")

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    pass


class MonitorCollector:
    """Prometheus view of a :class:`DriftMonitor`, read at scrape time (no second copy of the state)."""

    def __init__(self, monitor: DriftMonitor):
        self.monitor = monitor

    def collect(self):
        m = self.monitor
        drift = GaugeMetricFamily("textclf_drift", "Drift of live traffic against the reference profile (NaN: no data)", labels=["metric"])
        for name, value in m.metrics().items():
            drift.add_metric([name], math.nan if value is None else value)
        yield drift
        threshold = GaugeMetricFamily("textclf_drift_threshold", "Alert threshold of each drift metric", labels=["metric"])
        alert = GaugeMetricFamily("textclf_drift_alert", "1 while the drift metric is over its threshold", labels=["metric"])
        for name, value in m.config.thresholds.items():
            threshold.add_metric([name], value)
            alert.add_metric([name], float(name in m.active_alerts))
        yield threshold
        yield alert
        raised = CounterMetricFamily("textclf_drift_alerts", "Alerts raised", labels=["metric"])
        for name in m.config.thresholds:
            raised.add_metric([name], m.alerts_raised[name])
        yield raised
        window = GaugeMetricFamily("textclf_drift_window_samples", "Observations in the sliding window", labels=["window"])
        window.add_metric(["texts"], len(m.texts))
        window.add_metric(["predictions"], len(m.predictions))
        yield window
        events = CounterMetricFamily("textclf_monitor_events", "Logger events accepted (and pairing outcomes)", labels=["kind"])
        for kind, count in sorted(m.events.items()):
            events.add_metric([kind], count)
        yield events
        rejected = CounterMetricFamily("textclf_monitor_events_rejected", "Logger events refused, by reason", labels=["reason"])
        for reason, count in sorted(m.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected


async def _read_body(request: Request, limit: int) -> bytes:
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


def create_app(
    monitor: DriftMonitor,
    *,
    webhook_url: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    wandb_sink=None,
) -> FastAPI:
    """The FastAPI app around ``monitor``.

    Args:
        monitor: the drift state.
        webhook_url: POSTed a JSON alert (with a ``text`` field, as Slack expects) on every alert change.
        max_body_bytes: larger events get 413.
        wandb_sink: optional :class:`serving.monitor.wandb_sink.WandbSink`, given every accepted event.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(monitor))
    background: set[asyncio.Task] = set()  # strong references, so pending webhooks are not collected

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        if wandb_sink is not None:
            wandb_sink.close()

    app = FastAPI(title="textclf drift monitor", lifespan=lifespan)

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

    @app.post("/")
    async def receive(request: Request):
        try:
            body = await _read_body(request, max_body_bytes)
        except BodyTooLarge:
            monitor.reject("too_large")
            return _error(413, "too_large", f"event body over {max_body_bytes} bytes")
        try:
            event = parse_event(dict(request.headers), body)
        except MalformedEvent as err:
            monitor.reject(err.reason)
            return _error(400, err.reason, str(err))
        try:
            changes = monitor.ingest(event)  # counts its own rejections
        except MalformedEvent as err:
            return _error(400, err.reason, str(err))
        for change in changes if webhook_url else ():
            task = asyncio.create_task(notify(change))
            background.add(task)
            task.add_done_callback(background.discard)
        if wandb_sink is not None:
            wandb_sink.observe(monitor)
        return {"accepted": event.kind, "id": event.id}

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
