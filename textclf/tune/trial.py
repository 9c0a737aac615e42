"""One tuning trial: a training run on the tokenized splits, scored on the validation split.

The same code runs a trial on every engine; what differs is who chooses its settings and where its
validation numbers go:

* locally, Optuna's study calls :func:`run_trial` in the tune step's process and the numbers go to
  the Optuna trial (whose pruner may stop it);
* on Kubeflow, each Katib trial is a TrainJob running ``python -m textclf.tune.trial --engine katib``:
  the numbers are printed as ``validation_accuracy=0.91`` lines, which Katib's stdout metrics
  collector reads (and its median-stop rule acts on);
* on Vertex AI, each trial of the HyperparameterTuningJob runs ``--engine vertex``: the numbers go
  to the file Vertex reads, through Google's ``cloudml-hypertune``.

A trial trains on a seeded subsample of the training split (``trial_train_fraction``, the same rows
for every trial) for at most ``trial_max_steps`` steps, and never reads the test split. It writes no
model: its score is the validation metric of the epoch the final training would keep (the lowest
validation loss).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from textclf.train.settings import TrainSettings
from textclf.tune.settings import TuneSettings

log = logging.getLogger(__name__)

ENGINES = ("katib", "vertex")
KATIB_METRICS = ("validation_accuracy", "validation_loss")  # names Katib's default stdout filter matches
SUBSAMPLE_DIR = "trial-data"


def metric_name(tune_metric: str) -> str:
    """The name a trial reports its score under, on every engine (``validation_accuracy``)."""
    return f"validation_{tune_metric}"


def trial_data(tokenized_dir: str, fraction: float, seed: int, work_dir: str) -> str:
    """The splits a trial trains on: ``tokenized_dir`` itself, or (``fraction`` < 1) a folder under
    ``work_dir`` with a seeded subsample of the training split, the whole validation split and the
    tokenizer. No test split in either case that a trial reads. Made once per study and reused."""
    import datasets

    if fraction >= 1:
        return tokenized_dir
    dest = Path(work_dir, SUBSAMPLE_DIR)
    if (dest / "dataset_dict.json").exists():
        return str(dest)
    import numpy as np

    splits = datasets.load_from_disk(tokenized_dir)
    train = splits["train"]
    keep = max(1, round(len(train) * fraction))
    rows = np.sort(np.random.default_rng(seed).permutation(len(train))[:keep])  # in file order: reads stay sequential
    # keep_in_memory: only the row numbers, so that nothing is written into the tokenize step's folder;
    # save_to_disk then copies the rows batch by batch.
    subsample = train.select(rows, keep_in_memory=True)
    datasets.DatasetDict({"train": subsample, "validation": splits["validation"]}).save_to_disk(str(dest))
    shutil.copytree(Path(tokenized_dir, "tokenizer"), dest / "tokenizer", dirs_exist_ok=True)
    log.info(
        "trials train on %d of %d training texts (seed %d); validation: all %d",
        keep,
        len(train),
        seed,
        len(splits["validation"]),
    )
    return str(dest)


@dataclass
class Reporter:
    """A :class:`textclf.train.loop.ValidationProbe` that scores ``reports_per_epoch`` times an epoch,
    at even shares of it, and hands each validation to ``sink(metrics, point)``.

    ``point`` counts reports (epoch 1.5 with 2 a epoch is point 3): trials with other batch sizes
    or epochs report at the same points, so a pruner compares like with like.
    """

    reports_per_epoch: int
    sink: Callable[[dict, int], None]
    reports: list[dict] = field(default_factory=list)

    @property
    def last_point(self) -> int:
        return self.reports[-1]["point"] if self.reports else 0

    def point(self, progress: float) -> int:
        """The last report point at or before ``progress``."""
        return math.floor(progress * self.reports_per_epoch + 1e-9)

    def due(self, progress: float) -> bool:
        at_epoch_end = abs(progress - round(progress)) < 1e-9  # scored by the loop itself, right after
        return not at_epoch_end and self.point(progress) > self.last_point

    def report(self, metrics: dict, progress: float) -> None:
        point = self.point(progress)
        if point <= self.last_point:
            return  # max_steps stopped the epoch before the next point: that point was not reached
        self.reports.append({"point": point, "progress": round(progress, 4), **metrics})
        self.sink(metrics, point)


def trial_value(history: list[dict], tune_metric: str) -> float:
    """The trial's score: the validation metric of the epoch with the lowest validation loss (the
    epoch whose weights a training run with these settings keeps)."""
    kept = min(history, key=lambda epoch: epoch["val_loss"])
    return float(kept[f"val_{tune_metric}"])


@dataclass
class TrialOutcome:
    value: float
    history: list[dict]
    reports: list[dict]
    seconds: float


def run_trial(
    data_dir: str,
    settings: TrainSettings,
    tune: TuneSettings,
    metadata: dict,
    sink: Callable[[dict, int], None],
    work_dir: str,
) -> TrialOutcome:
    """Train with ``settings`` on ``data_dir`` (see :func:`trial_data`) and score the result.

    ``sink`` gets every validation (mid-epoch and epoch ends) and may raise to stop the trial
    (a pruned trial). A trial whose loss never becomes finite raises ``RuntimeError``.
    """
    from dataclasses import replace

    from textclf.train.loop import train

    if tune.trial_max_steps:
        settings = replace(settings, max_steps=min(settings.max_steps or tune.trial_max_steps, tune.trial_max_steps))
    reporter = Reporter(tune.trial_reports_per_epoch, sink)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="trial-", dir=work_dir) as scratch:
        summary = train(
            data_dir, None, settings, metadata, checkpoints=str(Path(scratch, "checkpoints")), probe=reporter
        )
    if summary is None:  # only rank 0 returns the record, and a trial is one process
        raise RuntimeError("the trial's training returned no record: was it started on several ranks?")
    if not math.isfinite(summary["best_validation_loss"]):
        raise RuntimeError(f"validation loss was never finite: {summary['history']}")
    return TrialOutcome(
        trial_value(summary["history"], tune.tune_metric),
        summary["history"],
        reporter.reports,
        time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------- trials of Katib and Vertex


def katib_sink(tune_metric: str) -> Callable[[dict, int | None], None]:
    """Lines Katib's stdout collector parses (its default filter: ``name=value``); the last line is
    the trial's score alone (the Experiment takes the latest value)."""

    def sink(metrics: dict, point: int | None) -> None:
        shown = metrics if point is not None else {tune_metric: metrics[tune_metric]}
        print(" ".join(f"validation_{k}={v:.6f}" for k, v in sorted(shown.items())), flush=True)

    return sink


def vertex_sink(tune_metric: str) -> Callable[[dict, int | None], None]:
    """Each validation to Vertex AI's tuning service, through ``cloudml-hypertune`` (the metric file it
    reads); the last, the trial's score, one step after the rest (the job takes the last measurement)."""
    import hypertune

    reporter, last = hypertune.HyperTune(), [0]

    def sink(metrics: dict, point: int | None) -> None:
        last[0] = last[0] + 1 if point is None else point
        reporter.report_hyperparameter_tuning_metric(
            metric_name(tune_metric), metrics[tune_metric], global_step=last[0]
        )

    return sink


@dataclass
class TrialPaths:
    """What a Katib or Vertex AI trial trains on, and which engine it reports to."""

    tokenized: str = ""
    metadata: str = "{}"
    engine: str = "katib"

    def __post_init__(self):
        if not self.tokenized:
            raise ValueError("--tokenized is required")
        if self.engine not in ENGINES:
            raise ValueError(f"--engine must be one of {ENGINES}, got {self.engine!r}")


def integral_arguments(argv: list[str]) -> list[str]:
    """``--batch_size=32.0`` -> ``--batch_size=32`` for the int settings: tuning services may render
    a discrete value as a float."""
    import dataclasses

    from textclf.settings import type_name

    ints = {f"--{f.name}" for f in dataclasses.fields(TrainSettings) if type_name(f) == "int"}
    fixed = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        if sep and name in ints:
            try:
                number = float(value)
                value = str(int(number)) if number.is_integer() else value
            except ValueError:
                pass
        fixed.append(f"{name}{sep}{value}" if sep else arg)
    return fixed


def main(argv: list[str] | None = None) -> None:
    """``python -m textclf.tune.trial``: one trial of a Katib Experiment or a Vertex AI tuning job."""
    from textclf.settings import SettingsParser
    from textclf.train.__main__ import node_local_copy
    from textclf.train.distributed import ranks_from_env

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = SettingsParser((TrialPaths, TrainSettings, TuneSettings), description=main.__doc__)
    paths, settings, tune = parser.parse_args_into_dataclasses(
        integral_arguments(sys.argv[1:] if argv is None else argv)
    )
    tokenized = node_local_copy(paths.tokenized, ranks_from_env())
    work_dir = tempfile.mkdtemp(prefix="tune-trial-")
    sink = (katib_sink if paths.engine == "katib" else vertex_sink)(tune.tune_metric)
    outcome = run_trial(
        trial_data(tokenized, tune.trial_train_fraction, settings.seed, work_dir),
        settings,
        tune,
        json.loads(paths.metadata),
        sink,
        work_dir,
    )
    log.info("trial finished in %.0f s: %s %.4f", outcome.seconds, metric_name(tune.tune_metric), outcome.value)
    sink({tune.tune_metric: outcome.value}, None)  # the score, last: what the tuning service ranks trials by


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
