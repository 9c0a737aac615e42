"""Tuning on one machine with Optuna: TPE search, median pruning, trials in sequence, resumable.

The study lives in an Optuna journal (an append-only log of every trial event) at
``<study_storage>/optuna-journal.log``: a local folder, or a ``gs://`` prefix, in which case the
journal is downloaded at the start and uploaded after every trial (trials run one at a time in
this process, so it has a single writer). The study's name is a digest of everything that makes
its trials comparable (data, tokenization, base settings, space, trial budget and metric), so a
rerun with the same inputs and storage continues the same study, and any other run starts its own
study in the same journal.

Resuming: finished trials (complete, pruned or failed) count towards ``n_trials``; a trial that was
running when the process died is marked failed and its parameters are tried again first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from textclf.base_model import resolve_base_model
from textclf.platform import storage
from textclf.train.model import DROPOUT_FIELDS, base_model_dropouts
from textclf.train.settings import TrainSettings
from textclf.tune.settings import TuneSettings
from textclf.tune.space import Parameter, SearchSpace, trial_space
from textclf.tune.trial import TrialOutcome, metric_name, run_trial, trial_data

log = logging.getLogger(__name__)

JOURNAL_FILE = "optuna-journal.log"
# The median pruner (Katib's medianstop alike) compares a trial with the others at the same point.
PRUNER_STARTUP_TRIALS = 3  # trials that always run to the end: a median of two is one trial's luck
# No trial is stopped before the end of this many epochs: early on the fastest learner (the highest
# learning rate, the least warmup) always leads, and stopping on it pruned 10 of 12 TREC-6 trials at
# their first report, half an epoch in, leaving the study two finished trials to learn from.
PRUNER_WARMUP_EPOCHS = 2


def pruner_warmup_points(tune: TuneSettings) -> int:
    """Validation reports a trial makes before it may be stopped (Optuna's ``n_warmup_steps``,
    Katib's ``start_step``): those of its first :data:`PRUNER_WARMUP_EPOCHS` epochs."""
    return PRUNER_WARMUP_EPOCHS * tune.trial_reports_per_epoch


# Fields of the trial budget that make two studies' trials incomparable (what the study name digests).
TRIAL_FIELDS = ("tune_metric", "trial_train_fraction", "trial_max_steps", "trial_reports_per_epoch")


@dataclass
class TrialRecord:
    """One trial as the report shows it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL
    params: dict
    value: float | None
    seconds: float | None
    reports: list[dict]
    error: str = ""
    name: str = ""  # the engine's name for it (a Katib Trial, a Vertex trial id); empty for Optuna


@dataclass
class StudyResult:
    """What a tuning run found: the best trial's settings and every trial."""

    study_name: str
    storage: str
    engine: str
    metric: str
    direction: str
    space: dict
    base_settings: dict
    best_params: dict
    best_value: float
    best_trial: int
    trials: list[TrialRecord]

    def record(self) -> dict:
        """What the final training records (``training.json``'s ``tuning``, W&B config)."""
        return {
            "engine": self.engine,
            "study": self.study_name,
            "storage": self.storage,
            "metric": self.metric,
            "direction": self.direction,
            "best_value": self.best_value,
            "best_trial": self.best_trial,
            "trials": len(self.trials),
            "params": self.best_params,
            "space": self.space,
        }


def study_name(space: SearchSpace, base: TrainSettings, tune: TuneSettings, metadata: dict) -> str:
    """``textclf-<digest>`` of what makes trials comparable: the same inputs give the same name."""
    key = {
        "space": space.to_spec(),
        "base": asdict(base),
        "trial": {f: getattr(tune, f) for f in TRIAL_FIELDS},
        "data": {k: metadata.get(k) for k in ("fingerprint", "base_model", "max_length", "truncation")},
    }
    return "textclf-" + hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


class Journal:
    """The Optuna journal at ``folder`` (local, or remote such as ``gs://``), as a local file Optuna writes."""

    def __init__(self, folder: str, work_dir: str):
        self.uri = storage.join(folder, JOURNAL_FILE)
        self.remote = storage.is_remote(folder)
        self.path = Path(work_dir, JOURNAL_FILE) if self.remote else Path(self.uri)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.remote and storage.exists(self.uri):
            storage.download(self.uri, str(self.path))
            log.info("study journal downloaded from %s", self.uri)

    def storage(self):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(str(self.path)))

    def save(self) -> None:
        if self.remote:
            storage.upload(str(self.path), self.uri)


def suggest(trial, space: SearchSpace) -> dict:
    """The trial's values for every parameter of ``space`` (Optuna's ``suggest_*``)."""
    values = {}
    for p in space.parameters:
        if p.kind == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, p.low, p.high, step=p.step or 1, log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
    return values


def baseline(space: SearchSpace, base: TrainSettings) -> dict:
    """The current settings of the tuned fields that lie in the space: trial 0 tries them, so the
    study's best is never worse on validation than the settings it started from. A negative dropout
    (keep the base model's) counts as the base model's value, so that trial 0 is the defaults exactly."""
    values = {p.name: getattr(base, p.name) for p in space.parameters}
    if any(name in DROPOUT_FIELDS and value < 0 for name, value in values.items()):
        kept = base_model_dropouts(resolve_base_model(base.base_model, weights=False))
        values.update({name: kept[name] for name, value in values.items() if name in kept and value < 0})
    return {p.name: values[p.name] for p in space.parameters if _in_space(p, values[p.name])}


def _in_space(p: Parameter, value) -> bool:
    if not p.contains(value):
        return False
    if p.kind == "int" and p.step:
        return (value - p.low) % p.step == 0
    return True


def resume(study) -> int:
    """Mark trials left running by a dead process as failed and queue their parameters again;
    returns how many trials are finished."""
    from optuna.trial import TrialState

    finished = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.RUNNING:
            log.warning("trial %d was cut short by the last interruption: it runs again", trial.number)
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        elif trial.state.is_finished():
            finished += 1
    return finished


def new_study(name: str, journal: Journal, tune: TuneSettings, seed: int, n_trials: int):
    import optuna

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, n_trials // 3), multivariate=True)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=pruner_warmup_points(tune))
        if tune.tune_pruning
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=name,
        storage=journal.storage(),
        sampler=sampler,
        pruner=pruner,
        direction=tune.direction,
        load_if_exists=True,
    )


class Objective:
    """Optuna's objective: one trial with the suggested settings, its validations sent to the pruner."""

    def __init__(
        self, data_dir: str, space: SearchSpace, base: TrainSettings, tune: TuneSettings, metadata: dict, work_dir: str
    ):
        self.data_dir, self.space, self.base, self.tune, self.metadata, self.work_dir = (
            data_dir,
            space,
            base,
            tune,
            metadata,
            work_dir,
        )

    def __call__(self, trial) -> float:
        import optuna

        params = suggest(trial, self.space)
        log.info(
            "trial %d: %s",
            trial.number,
            ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()),
        )

        def sink(metrics: dict, point: int) -> None:
            trial.report(metrics[self.tune.tune_metric], point)
            trial.set_user_attr("reports", [*trial.user_attrs.get("reports", []), {"point": point, **metrics}])
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"{metric_name(self.tune.tune_metric)} {metrics[self.tune.tune_metric]:.4f} "
                    f"at point {point} is worse than the median of the earlier trials"
                )

        started = time.perf_counter()
        try:
            outcome: TrialOutcome = run_trial(
                self.data_dir, replace(self.base, **params), self.tune, self.metadata, sink, self.work_dir
            )
        except RuntimeError as error:  # the study goes on (optimize catches it); the report shows why
            trial.set_user_attr("error", str(error)[:500])
            raise
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("history", outcome.history)
        return outcome.value


class Progress:
    """After each trial: the journal saved, and a line with its outcome, the best so far and the time left."""

    def __init__(self, journal: Journal, n_trials: int, done_before: int, metric: str):
        self.journal, self.n_trials, self.done, self.metric = journal, n_trials, done_before, metric
        self.started, self.ran = time.perf_counter(), 0

    def __call__(self, study, trial) -> None:
        self.journal.save()
        self.ran += 1
        self.done += 1
        elapsed = time.perf_counter() - self.started
        left = (self.n_trials - self.done) * elapsed / self.ran
        if trial.state.name == "COMPLETE":
            outcome = f"{self.metric} {trial.value:.4f}"
        else:  # a pruned trial's value is only its last report: say what happened instead
            outcome = trial.state.name.lower() + (
                f" at {self.metric} {trial.value:.4f}" if trial.value is not None else ""
            )
        best = next((t for t in study.get_trials(deepcopy=False) if t.number == _best_number(study)), None)
        log.info(
            "trial %d/%d (#%d) %s in %.0f s (%.2f trials/h); best %s; about %.0f min left",
            self.done,
            self.n_trials,
            trial.number,
            outcome,
            trial.user_attrs.get("seconds", 0.0),
            3600 * self.ran / elapsed,
            f"{best.value:.4f} (#{best.number})" if best else "none yet",
            left / 60,
        )


def _best_number(study) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:  # no complete trial yet
        return None


def trial_records(study) -> list[TrialRecord]:
    from optuna.trial import TrialState

    records = []
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.RUNNING, TrialState.WAITING):
            continue
        error = t.user_attrs.get("error", "") if t.state == TrialState.FAIL else ""
        value = t.value if t.state == TrialState.COMPLETE else None  # a pruned trial's is only its last report
        records.append(
            TrialRecord(
                t.number,
                t.state.name,
                dict(t.params),
                value,
                t.user_attrs.get("seconds"),
                t.user_attrs.get("reports", []),
                error,
            )
        )
    return records


def run_study(
    tokenized_dir: str, metadata: dict, base: TrainSettings, tune: TuneSettings, storage_folder: str, work_dir: str
) -> StudyResult:
    """Tune ``base``'s fields named by ``tune.search_space`` on the tokenized splits, resuming the
    study stored under ``storage_folder`` when there is one.

    Raises:
        SearchSpaceError: the space does not fit ``TrainSettings``.
        RuntimeError: no trial completed (every one failed or was pruned).
    """
    space = trial_space(tune)
    name = study_name(space, base, tune, metadata)
    journal = Journal(storage_folder, work_dir)
    study = new_study(name, journal, tune, base.seed, tune.n_trials)
    done = resume(study)
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(baseline(space, base), user_attrs={"baseline": True})
    log.info(
        "study %s in %s: %d of %d trials finished before; space %s",
        name,
        journal.uri,
        done,
        tune.n_trials,
        ", ".join(f"{p.name} {p.describe()}" for p in space.parameters),
    )
    if done < tune.n_trials:
        data_dir = trial_data(tokenized_dir, tune.trial_train_fraction, base.seed, work_dir)
        study.optimize(
            Objective(data_dir, space, base, tune, metadata, work_dir),
            n_trials=tune.n_trials - done,
            catch=(RuntimeError,),
            callbacks=[Progress(journal, tune.n_trials, done, tune.tune_metric)],
        )
    journal.save()
    best = _best_number(study)
    if best is None:
        raise RuntimeError(
            f"study {name}: no trial completed ({len(study.trials)} failed or pruned); see the "
            "trials' errors above: a learning rate too high for the data is the usual cause"
        )
    return StudyResult(
        name,
        journal.uri,
        "optuna",
        tune.tune_metric,
        tune.direction,
        space.to_spec(),
        asdict(base),
        dict(study.best_trial.params),
        float(study.best_value),
        best,
        trial_records(study),
    )
