"""How a tuning run searches (each field a parameter of the tune pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textclf.settings import require_at_least, setting
from textclf.tune.space import default_space_json

# What a trial's score is: a validation metric and whether higher is better.
Direction = Literal["maximize", "minimize"]
OBJECTIVES: dict[str, Direction] = {"accuracy": "maximize", "loss": "minimize"}


@dataclass
class TuneSettings:
    """The search: its space, its budget, what a trial is scored on and how cheap it is (every engine)."""

    search_space: str = setting(
        default_space_json(),
        "TrainSettings fields to tune and their ranges or choices, as "
        "JSON/YAML text or a .yaml/.json file (local or gs://); the default is "
        "textclf/tune/default_space.yaml (docs/tuning.md describes the format).",
    )
    n_trials: int = setting(12, "Trials of the study in all, those finished before a resume included.")
    tune_metric: str = setting(
        "accuracy",
        "Validation metric a trial is scored on: accuracy (maximised) or loss "
        "(minimised). The test split is never used for tuning.",
        choices=tuple(OBJECTIVES),
    )
    trial_train_fraction: float = setting(
        1.0,
        "Share of the training split each trial trains on: a seeded "
        "subsample, the same for every trial (the validation split stays whole).",
    )
    trial_max_steps: int = setting(
        0,
        "Optimizer steps at most per trial; 0: as many as its epochs take. Capped trials cannot tell run "
        "lengths apart: epochs and min_train_steps are then not tuned.",
    )
    trial_reports_per_epoch: int = setting(
        2,
        "Validation passes per epoch of a trial (at even shares of the "
        "epoch), reported to the pruner; each costs one pass over the validation "
        "split.",
    )
    tune_pruning: bool = setting(
        True,
        "Stop a trial early when its validation metric is below the median of the "
        "earlier trials' at the same point (Optuna's median pruner; Katib's medianstop).",
    )

    def __post_init__(self):
        if self.tune_metric not in OBJECTIVES:
            raise ValueError(f"tune_metric must be one of {sorted(OBJECTIVES)}, got {self.tune_metric!r}")
        if not 0 < self.trial_train_fraction <= 1:
            raise ValueError(f"trial_train_fraction must be in (0, 1], got {self.trial_train_fraction}")
        require_at_least(self, 1, "n_trials", "trial_reports_per_epoch")
        require_at_least(self, 0, "trial_max_steps")

    @property
    def direction(self) -> Direction:
        return OBJECTIVES[self.tune_metric]


@dataclass
class LocalTuneSettings:
    """Where the Optuna study of a local tuning run is kept (Katib and Vertex AI keep their own)."""

    study_storage: str = setting(
        "",
        "Folder (local or gs://) of the Optuna study's journal, so that an interrupted "
        "tuning run continues from its finished trials; empty: beside the tune step's "
        "output (a retried step resumes). python -m pipelines tune keeps it under runs/.",
    )


@dataclass
class CloudTuneSettings:
    """How many trials the tuning service (Katib on Kubeflow, Vertex AI) runs at once."""

    parallel_trials: int = setting(
        2,
        "Trials that run at once, each on its own GPU (Katib's parallelTrialCount, Vertex AI's parallel_trial_count).",
    )

    def __post_init__(self):
        require_at_least(self, 1, "parallel_trials")


@dataclass
class KatibSettings:
    """How long the Kubeflow tune step waits for its Katib Experiment (each trial's TrainJob has
    trainjob_timeout_hours)."""

    tune_timeout_hours: float = setting(
        48.0, "Longest the tune step waits for the Katib Experiment; it then deletes it and fails."
    )

    def __post_init__(self):
        if self.tune_timeout_hours <= 0:
            raise ValueError(f"tune_timeout_hours must be positive, got {self.tune_timeout_hours}")
