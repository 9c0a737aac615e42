"""Scheduled drift check: read a monitor's ``/drift`` and, when drift is over threshold, run a command.

Meant for a cron job (manifests/monitor/drift-check-cronjob.yaml) whose command submits the
training pipeline, e.g. ``--then "python -m pipelines submit --backend kfp"``.
Exit status: 0 no drift; 1 drift and no ``--then``; with ``--then``, its exit status;
2 the monitor could not be read.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from typing import Any

import httpx

from textclf import drift

log = logging.getLogger("serving.monitor.check")

EXIT_DRIFT = 1
EXIT_UNREADABLE = 2


def breached_metrics(report: dict[str, Any], thresholds: dict[str, float] | None = None) -> dict[str, float]:
    """Metrics over threshold in a ``/drift`` report: the monitor's own alerts, or ``thresholds``.

    With ``thresholds``, a metric only counts once its window holds the monitor's ``min_samples``.
    """
    metrics = report["metrics"]
    if thresholds is None:
        return {name: metrics[name] for name in report["alerts"]}
    window = report["window"]
    return drift.over_threshold(metrics, window, window["min_samples"], thresholds)


def run_check(
    url: str, thresholds: dict[str, float] | None = None, then: str | None = None, timeout: float = 10.0
) -> int:
    """Fetch ``url`` (a monitor's ``/drift``), report, and run ``then`` (no shell) on drift."""
    try:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        report = response.json()
    except (httpx.HTTPError, ValueError) as err:
        log.error("cannot read drift report from %s: %s", url, err)
        return EXIT_UNREADABLE
    breached = breached_metrics(report, thresholds)
    if not breached:
        log.info("no drift over threshold (window: %s)", report["window"])
        return 0
    log.warning("drift over threshold: %s", ", ".join(f"{k}={v:.4f}" for k, v in breached.items()))
    if not then:
        return EXIT_DRIFT
    log.info("running: %s", then)
    return subprocess.run(shlex.split(then), check=False).returncode
