"""Experiment tracking on Weights & Biases that is safe to call from any step.

``train`` and ``evaluate`` log their config, metrics and the model (alias ``candidate``); a model
that passes the gate gets the alias ``approved`` (deploy step); the alias ``production`` follows
what really serves: ``python -m serving.rollout promote`` / ``analyze`` set it when a canary takes
all the traffic, and the gate reads the production model's metrics as the champion. Tracking
never blocks the pipeline:

* with no API key it runs **offline** (the run is written to disk; ``wandb sync`` uploads it
  later) and never prompts for a login;
* ``WANDB_MODE=disabled`` (or ``mode="disabled"``) writes nothing at all;
* an online start that fails (network, quota) falls back to offline with a warning.

The key comes from the environment (``WANDB_API_KEY``, which on Kubeflow is filled from a
Kubernetes secret), or on Vertex AI from a Secret Manager version named by
``TrackingSettings.api_key_secret``. It is never a pipeline parameter and never in YAML.

This module is the tracking interface of the ML code: what to record and the rules above. The
W&B SDK calls are ``textclf.platform.wandb_client``'s, the Secret Manager read
``textclf.platform.secret_manager``'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textclf.platform import secret_manager, wandb_client
from textclf.settings import setting

logger = logging.getLogger(__name__)

CANDIDATE = "candidate"  # evaluated
APPROVED = "approved"  # passed the gate, manifest written
PRODUCTION = "production"  # serving all traffic
MODEL_URI_KEY = "model_uri"  # artifact metadata: the Model directory's URI (what STORAGE_URI names)
MODES = ("online", "offline", "disabled")
# wandb's own aliases for its modes.
_MODE_ALIASES = {"run": "online", "dryrun": "offline"}


@dataclass
class TrackingSettings:
    """Where and how runs are tracked. ``mode`` empty chooses online when a key is available and
    offline otherwise; ``WANDB_MODE=disabled`` in the environment wins."""

    wandb_project: str = setting(
        "textclf", "W&B project of the train, evaluate and approve runs (offline without an API key)."
    )
    wandb_entity: str = setting("", "W&B team or user; empty uses the API key's default entity.")
    wandb_api_key_secret: str = setting(
        "",
        "Secret Manager version holding the W&B key (Vertex), e.g. "
        "projects/P/secrets/wandb-api-key/versions/latest; empty uses WANDB_API_KEY (on Kubeflow, "
        "the `wandb` Kubernetes secret). Read only when WANDB_API_KEY is not set.",
    )
    mode: str = setting("", "online, offline or disabled; empty: online when a key is available.")
    dir: str = setting("", "Folder of the run files (<dir>/wandb/...); empty: WANDB_DIR or the working directory.")
    model_artifact: str = setting("textclf-model", "Name of the model's artifact collection.")
    LIBRARY_ONLY: ClassVar = ("mode", "dir", "model_artifact")  # not pipeline parameters

    def __post_init__(self):
        self.mode = _MODE_ALIASES.get(self.mode, self.mode)
        if self.mode and self.mode not in MODES:
            raise ValueError(f"unknown W&B mode {self.mode!r}; expected one of {MODES} or empty")
        if not self.wandb_project:
            raise ValueError("W&B project must not be empty")


def api_key(settings: TrackingSettings) -> str:
    """The W&B API key from ``WANDB_API_KEY`` or the Secret Manager, or ``""`` when there is none.

    A secret that cannot be read is logged (by name, never by value) and treated as no key.
    """
    key = os.environ.get("WANDB_API_KEY", "")
    if key or not settings.wandb_api_key_secret:
        return key
    try:
        key = secret_manager.read_secret(settings.wandb_api_key_secret)
    except Exception as error:  # noqa: BLE001 - any failure here means "no key", never a failed step
        logger.warning(
            "could not read the W&B key from %s (%s); tracking offline",
            settings.wandb_api_key_secret,
            type(error).__name__,
        )
        return ""
    # wandb reads the key from the environment; setting it here keeps it out of every argument list.
    os.environ["WANDB_API_KEY"] = key
    return key


def resolve_mode(settings: TrackingSettings) -> str:
    """The mode a run will really use: ``online`` only when a key is available."""
    env_mode = _MODE_ALIASES.get(os.environ.get("WANDB_MODE", ""), os.environ.get("WANDB_MODE", ""))
    if env_mode == "disabled":
        return "disabled"
    wanted = settings.mode or env_mode
    if wanted in ("offline", "disabled"):
        return wanted
    if api_key(settings):
        return "online"
    if wanted == "online":
        logger.warning("W&B mode online was asked for but no API key is available; tracking offline")
    return "offline"


class TrackedRun:
    """One W&B run, or a stand-in that records nothing when tracking is disabled."""

    def __init__(self, run, settings: TrackingSettings):
        self._run = run
        self.settings = settings

    @property
    def mode(self) -> str:
        if self._run is None:
            return "disabled"
        return "offline" if self._run.offline else "online"

    @property
    def run_dir(self) -> str | None:
        """The run's local folder (``.../wandb/<offline-|>run-<time>-<id>``), ``None`` when disabled."""
        return None if self._run is None else str(Path(self._run.dir).parent)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalar metrics, at ``step`` (training step or epoch) when given."""
        if self._run is not None:
            self._run.log(dict(metrics), step=step)

    def set_summary(self, metrics: Mapping[str, Any]) -> None:
        """Set the run's final values (what the W&B runs table shows)."""
        if self._run is not None:
            self._run.summary.update(dict(metrics))

    def log_confusion_matrix(
        self, labels: Sequence[str], matrix: Sequence[Sequence[int]], key: str = "confusion_matrix"
    ) -> None:
        """Log a confusion matrix chart: ``matrix[i][j]`` counts class ``labels[i]`` predicted as ``labels[j]``.

        The arguments are those of KFP's ``ClassificationMetrics.log_confusion_matrix``.
        """
        if len(matrix) != len(labels) or any(len(row) != len(labels) for row in matrix):
            raise ValueError(f"confusion matrix must be {len(labels)}x{len(labels)} for labels {list(labels)}")
        if self._run is not None:
            self._run.log({key: wandb_client.confusion_matrix_chart(labels, matrix)})

    def log_model(
        self, model_dir: str, aliases: Sequence[str] = (CANDIDATE,), metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Log the ``save_pretrained`` folder as a version of the model artifact.

        Logging the same files again adds ``aliases`` to the existing version (W&B
        deduplicates by content), which is how a model is promoted. Put the evaluation
        metrics in ``metadata["metrics"]``: :func:`champion_metrics` reads them back.
        """
        path = Path(model_dir)
        if not path.is_dir() or not any(path.iterdir()):
            raise NotADirectoryError(f"model folder missing or empty: {model_dir}")
        if self._run is not None:
            self._run.log_artifact(
                wandb_client.folder_artifact(self.settings.model_artifact, "model", path, metadata),
                aliases=list(aliases),
            )

    def finish(self, exit_code: int = 0) -> None:
        """End the run and wait until W&B has written it to disk (offline) or uploaded it (online).

        ``run.finish()`` alone returns while wandb's service may still hold records in memory
        (a step that copies the run folder would miss them), so the service is shut down too:
        runs are therefore one at a time per process, which is what a pipeline step does.
        """
        if self._run is not None:
            wandb_client.finish(self._run, exit_code)

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def start(
    settings: TrackingSettings, job_type: str, config: Mapping[str, Any] | None = None, group: str = "", name: str = ""
) -> TrackedRun:
    """Start a run; use it as a context manager or call ``finish()``.

    Args:
        settings: Project, entity, mode.
        job_type: ``train``, ``evaluate``, ``promote``...
        config: Hyper-parameters and inputs to record (never secrets).
        group: Groups the runs of one pipeline run (pass the pipeline job id).
        name: Display name; W&B picks one when empty.
    """
    mode = resolve_mode(settings)
    if mode == "disabled":
        return TrackedRun(None, settings)

    def init(mode: str):
        return wandb_client.init_run(
            settings.wandb_project,
            settings.wandb_entity,
            settings.dir,
            mode,
            job_type=job_type,
            config=dict(config or {}),
            group=group,
            name=name,
        )

    if settings.dir:
        Path(settings.dir).mkdir(parents=True, exist_ok=True)
    try:
        run = init(mode)
    except Exception as error:
        if mode != "online":
            raise
        logger.warning("W&B online start failed (%s); tracking offline", error)
        run = init("offline")
    tracked = TrackedRun(run, settings)
    logger.info("W&B %s run %s (%s) in %s", tracked.mode, run.id, job_type, tracked.run_dir)
    return tracked


def model_metadata(metrics: Mapping[str, Any], model_uri: str = "") -> dict:
    """The model artifact's metadata: the evaluation metrics (the gate's champion reads them) and
    the Model directory's URI, by which :func:`set_production_alias` finds the version a promoted
    InferenceService serves."""
    return {"metrics": dict(metrics), **({MODEL_URI_KEY: model_uri} if model_uri else {})}


def approve(
    settings: TrackingSettings, model_dir: str, metrics: Mapping[str, Any], group: str = "", model_uri: str = ""
) -> None:
    """Give the model in ``model_dir`` the ``approved`` alias: it passed the gate and its
    manifest was written. (``production`` is set by the rollout when it really serves.)"""
    with start(settings, job_type="approve", config={"approved_metrics": dict(metrics)}, group=group) as run:
        run.log_model(model_dir, aliases=[APPROVED], metadata=model_metadata(metrics, model_uri))


def _model_collection(settings: TrackingSettings):
    """(W&B public API client, ``entity/project/model_artifact``): where the model's versions live."""
    return wandb_client.artifact_collection(
        api_key(settings), settings.wandb_entity, settings.wandb_project, settings.model_artifact
    )


def set_production_alias(settings: TrackingSettings, model_uri: str) -> str:
    """Move ``production`` to the model version whose files are ``model_uri``: the model that now
    serves all traffic. W&B keeps an alias on one version of a collection, so the previous
    holder loses it.

    The version is found through the public API by the ``model_uri`` its metadata records
    (evaluate and approve write it). Never raises: a promote that happened must not fail
    because of W&B, so every outcome, including "tracking is offline, nothing set", is a line
    of text the caller prints.
    """
    mode = resolve_mode(settings)
    if mode != "online":
        return (
            f"W&B {mode}: no {PRODUCTION} alias set (with WANDB_API_KEY set, run `python -m serving.rollout "
            f"promote` again to record it)"
        )
    if not model_uri:
        return f"W&B: the InferenceService names no model URI, so no {PRODUCTION} alias was set"
    try:
        api, collection = _model_collection(settings)
        versions = [
            a
            for a in api.artifacts(type_name="model", name=collection)
            if (a.metadata or {}).get(MODEL_URI_KEY) == model_uri
        ]
        if not versions:
            return f"W&B: no version of {collection} records model_uri {model_uri}; no {PRODUCTION} alias set"
        version = max(versions, key=lambda a: int(str(a.version).lstrip("v") or 0))
        if PRODUCTION not in version.aliases:
            version.aliases.append(PRODUCTION)
            version.save()
    except Exception as error:  # noqa: BLE001 - W&B must never fail a promote
        logger.warning("could not set the W&B %s alias: %s", PRODUCTION, error)
        return f"W&B: could not set the {PRODUCTION} alias ({type(error).__name__}: {error}); the promote stands"
    return f"W&B: {collection}:{version.version} ({model_uri}) is now {PRODUCTION}"


def champion_metrics(settings: TrackingSettings) -> dict | None:
    """Evaluation metrics of the model holding the ``production`` alias, from its metadata.

    Returns ``None`` when there is no champion to compare with: tracking is offline or
    disabled (no server to ask), or no version has the alias yet.

    Raises:
        Exception: The W&B server was reachable with a key but could not answer; the gate
            must then fail closed rather than assume there is no champion.
    """
    if resolve_mode(settings) != "online":
        logger.info("W&B is not online: no champion metrics to read")
        return None
    api, collection = _model_collection(settings)
    ref = f"{collection}:{PRODUCTION}"
    if not api.artifact_exists(ref, type="model"):
        logger.info("no model holds the %s alias yet (%s)", PRODUCTION, ref)
        return None
    metrics = api.artifact(ref, type="model").metadata.get("metrics")
    return dict(metrics) if metrics else None
