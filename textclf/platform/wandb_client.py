"""The Weights & Biases SDK calls behind ``textclf.tracking`` (which decides what to record, and when).

``wandb`` is imported by each call, not by this module: a process that tracks nothing never pays
for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

# Bounded so a step never waits long on an unreachable W&B server.
INIT_TIMEOUT_S = 60
API_TIMEOUT_S = 30


RunMode = Literal["online", "offline"]
RUN_MODES: dict[str, RunMode] = {"online": "online", "offline": "offline"}  # what init_run takes, typed for wandb


def init_run(project: str, entity: str, folder: str, mode: str, **run: Any):
    """``wandb.init`` in ``mode`` (online/offline), as a new run of this process; ``run``: job_type,
    config, group, name (empty values: W&B's defaults)."""
    import wandb

    return wandb.init(
        project=project,
        entity=entity or None,
        dir=folder or None,
        mode=RUN_MODES[mode],
        reinit="create_new",
        **{key: value or None for key, value in run.items()},
        # console="off": the step's own logs already reach the pipeline UI.
        settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, console="off", x_disable_stats=True, silent=True),
    )


def finish(run, exit_code: int) -> None:
    """End the run and wait until W&B has written it to disk (offline) or uploaded it (online).

    ``run.finish()`` alone returns while wandb's service may still hold records in memory (a step
    that copies the run folder would miss them), so the service is shut down too: runs are
    therefore one at a time per process, which is what a pipeline step does.
    """
    import wandb

    run.finish(exit_code=exit_code)
    wandb.teardown(exit_code=exit_code)


def confusion_matrix_chart(labels: Sequence[str], matrix: Sequence[Sequence[int]]):
    """W&B's confusion matrix chart: ``matrix[i][j]`` counts class ``labels[i]`` predicted as ``labels[j]``."""
    import wandb

    rows = [[labels[i], labels[j], matrix[i][j]] for i in range(len(labels)) for j in range(len(labels))]
    return wandb.plot.plot_table(
        "wandb/confusion_matrix/v1",
        wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=rows),
        {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
        {"title": "Confusion matrix"},
    )


def folder_artifact(name: str, kind: str, folder: Path, metadata: Mapping[str, Any] | None):
    """A W&B artifact of every file under ``folder``."""
    import wandb

    artifact = wandb.Artifact(name, type=kind, metadata=dict(metadata or {}))
    artifact.add_dir(str(folder))
    return artifact


def artifact_collection(api_key: str, entity: str, project: str, collection: str):
    """(W&B public API client, ``entity/project/collection``); empty entity: the key's default one."""
    import wandb

    api = wandb.Api(api_key=api_key, timeout=API_TIMEOUT_S)
    return api, f"{entity or api.default_entity}/{project}/{collection}"
