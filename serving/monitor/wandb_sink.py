"""Optional W&B logging of drift metrics and recent prediction samples ("inferences").

Offline by default (``WANDB_MODE`` or ``--wandb_mode`` change it): runs are written under
``run_dir`` and can be uploaded later with ``wandb sync``. No API key is read or needed offline.
"""

from __future__ import annotations

import os


class WandbSink:
    """Logs the monitor's metrics, alert states and a table of recent samples every ``every`` events.

    Args:
        project: W&B project.
        every: accepted events between two logs.
        mode: ``offline`` (default), ``online`` or ``disabled``.
        run_dir: where the run files go.
        config: run config (thresholds, window size...).
    """

    def __init__(
        self,
        project: str,
        *,
        every: int = 100,
        mode: str | None = None,
        run_dir: str | None = None,
        config: dict | None = None,
    ):
        import wandb

        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self._wandb = wandb
        self.every = every
        self._seen = 0
        self.run = wandb.init(
            project=project,
            job_type="drift-monitor",
            mode=mode or os.environ.get("WANDB_MODE", "offline"),
            dir=run_dir,
            config=config or {},
        )

    def observe(self, monitor) -> None:
        """Count one accepted event; every ``every`` events, log the monitor's state."""
        self._seen += 1
        if self._seen % self.every == 0:
            self.log(monitor)

    def log(self, monitor) -> None:
        data = {f"drift/{name}": value for name, value in monitor.metrics().items() if value is not None}
        data.update({f"alert/{name}": int(name in monitor.active_alerts) for name in monitor.config.thresholds})
        data["window/texts"], data["window/predictions"] = len(monitor.texts), len(monitor.predictions)
        rows = [[s["id"], s["text"], s["label"], s["score"]] for s in monitor.samples]
        data["samples"] = self._wandb.Table(columns=["id", "text", "label", "score"], data=rows)
        self.run.log(data, step=self._seen)

    def close(self) -> None:
        self.run.finish()
