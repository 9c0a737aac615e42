"""Tuning on one machine: the search space's checks, trials, the Optuna study (TPE, pruning, resume),
the trial entry point of Katib and Vertex, and the tune pipeline through kfp's local runner.

Most study tests replace the training run by a scripted one (``scripted_trials``), so that what the
study does with its trials is tested quickly and exactly; the trials themselves train the tiny random
model for a few steps.
"""

import json
import math
from pathlib import Path

import pytest

from textclf.settings import from_lines, to_lines
from textclf.train import TrainSettings
from textclf.tune.settings import TuneSettings
from textclf.tune.space import SearchSpaceError, load_space, parse_space

SMALL_SPACE = '{"learning_rate": {"low": 1e-4, "high": 1e-2, "log": true}, "batch_size": {"choices": [8, 16]}}'


# ----------------------------------------------------------------------------- the search space


def test_the_default_space_is_valid_and_holds_the_issues_settings():
    from textclf.tune.study import baseline

    space = load_space("")
    assert space.names == [
        "learning_rate",
        "min_train_steps",
        "batch_size",
        "warmup_ratio",
        "weight_decay",
        "hidden_dropout",
        "class_weighting",
    ]
    lr = space.parameters[0]
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 2e-5, 3e-4, True)
    assert space.parameters[1].kind == "int" and space.parameters[2].choices == (16, 32, 64)
    # trial 0 runs the defaults exactly: hidden_dropout's -1 ("the base model's") is MiniLM's 0.1
    assert baseline(space, TrainSettings()) == {
        **{name: getattr(TrainSettings(), name) for name in space.names},
        "hidden_dropout": 0.1,
    }
    assert load_space(space.to_json()) == space  # the pipeline parameter's default reads back as the file


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"learnin_rate": {"low": 1, "high": 2}}, "unknown setting 'learnin_rate'"),
        ({"log_every": {"low": 1, "high": 9}}, "log_every is not tunable: it changes logging only"),
        ({"epochs": {"low": 1.5, "high": 3}}, "epochs: 1.5 is not a int"),
        ({"learning_rate": {"low": 1e-3, "high": 1e-4}}, "learning_rate: low must be below high"),
        ({"weight_decay": {"low": 0.0, "high": 0.1, "log": True}}, "weight_decay: a log range must stay above 0"),
        ({"batch_size": {"choices": []}}, "batch_size: choices must be a non-empty list"),
        ({"batch_size": {"choices": [16, 16]}}, "choices repeat a value"),
        (
            {"min_train_steps": {"low": 0, "high": 300}},
            "min_train_steps: 0 is not a valid setting: min_train_steps must be at least 1",
        ),
        ({"group_by_length": {"low": 0, "high": 1}}, "group_by_length is a bool setting: give choices"),
        ({"epochs": {"low": 1, "high": 3, "stepp": 1}}, "unknown key(s) ['stepp']"),
        ({"epochs": {"low": 1}}, "a range needs both low and high"),
        ({"warmup_ratio": {"low": 0.0, "high": 0.2, "step": 0.5}}, "step must be positive, at most high - low"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_a_space_that_does_not_fit_the_settings_is_a_named_error(spec, message):
    with pytest.raises(SearchSpaceError) as error:
        parse_space(spec)
    assert message in str(error.value)


def test_yaml_and_files_are_read_and_yaml_numbers_without_a_dot_are_taken(tmp_path):
    (tmp_path / "space.yaml").write_text(
        "learning_rate: {low: 1e-5, high: 1e-3, log: true}\ngroup_by_length: {choices: [true, false]}\n"
    )
    space = load_space(str(tmp_path / "space.yaml"))  # YAML reads 1e-5 as a string
    assert (space.parameters[0].low, space.parameters[1].choices) == (1e-5, (True, False))
    assert load_space("epochs: {low: 1, high: 2}\nwarmup_ratio: {low: 0, high: 0.2, step: 0.1}\n").names == [
        "epochs",
        "warmup_ratio",
    ]
    with pytest.raises(SearchSpaceError, match="no such file"):
        load_space(str(tmp_path / "missing.yaml"))
    with pytest.raises(SearchSpaceError, match="not valid YAML or JSON"):
        load_space("{learning_rate: [")


def test_capped_trials_do_not_tune_how_long_a_run_trains(scripted_trials, tmp_path, caplog):
    """A trial capped at trial_max_steps trains that many steps whatever epochs or min_train_steps say:
    the study leaves them out (logged) and the final model keeps the base settings' values."""
    from textclf.tune.space import trial_space

    spec = "learning_rate: {low: 1e-4, high: 1e-2, log: true}\nmin_train_steps: {low: 500, high: 4000, log: true}\n"
    assert trial_space(TuneSettings(search_space=spec)).names == ["learning_rate", "min_train_steps"]
    with caplog.at_level("WARNING", logger="textclf.tune.space"):
        assert trial_space(TuneSettings(search_space=spec, trial_max_steps=300)).names == ["learning_rate"]
    assert "not tuned: min_train_steps" in caplog.text
    with pytest.raises(SearchSpaceError, match="cannot be told apart"):
        trial_space(TuneSettings(search_space='{"epochs": {"low": 1, "high": 3}}', trial_max_steps=300))
    result = scripted_study(tmp_path, 2, tune_pruning=False, trial_max_steps=300)
    assert set(result.best_params) == {"learning_rate", "batch_size"}, "SMALL_SPACE holds no run-length field"
    capped = scripted_study(tmp_path / "capped", 2, space=spec, tune_pruning=False, trial_max_steps=300)
    assert set(capped.best_params) == {"learning_rate"}
    assert {s.min_train_steps for s in scripted_trials[-2:]} == {TrainSettings().min_train_steps}


def test_settings_travel_as_name_value_lines_as_backends_render_them():
    settings = TrainSettings(epochs=2, learning_rate=3e-5, group_by_length=False, base_model="/models/a b")
    assert from_lines(TrainSettings, to_lines(vars(settings))) == settings
    # How KFP and Vertex render values substituted into a string.
    assert from_lines(TrainSettings, "epochs=3.0\nlearning_rate=1e-05\ngroup_by_length=true").epochs == 3
    with pytest.raises(ValueError, match="setting epochs: '2.5' is not a int"):
        from_lines(TrainSettings, "epochs=2.5")
    with pytest.raises(ValueError, match="not a name=value line of one of its fields"):
        from_lines(TrainSettings, "epoch=2")


# ----------------------------------------------------------------------------- trials


def test_the_reporter_scores_at_even_shares_of_an_epoch_and_never_twice_at_a_point():
    from textclf.tune.trial import Reporter

    sent = []
    reporter = Reporter(2, lambda metrics, point: sent.append((point, metrics["accuracy"])))

    def step(progress):  # what the loop does after an optimizer step
        if reporter.due(progress):
            reporter.report({"accuracy": progress, "loss": 0.0}, progress)

    for progress in (0.25, 0.5, 0.75, 1.0):
        step(progress)
    reporter.report({"accuracy": 1.0, "loss": 0.0}, 1.0)  # the loop's own validation at the epoch's end
    for progress in (1.25, 1.5, 1.63):  # max_steps stops the second epoch at 1.63
        step(progress)
    reporter.report({"accuracy": 1.63, "loss": 0.0}, 1.63)  # its last validation: point 3 was sent already
    assert sent == [(1, 0.5), (2, 1.0), (3, 1.5)]
    assert [r["progress"] for r in reporter.reports] == [0.5, 1.0, 1.5]


def test_trials_train_on_a_seeded_subsample_and_never_see_the_test_split(tokenized_dir, tmp_path):
    import datasets

    from textclf.tune.trial import trial_data

    assert trial_data(tokenized_dir, 1.0, 0, str(tmp_path)) == tokenized_dir
    before = sorted(p.name for p in Path(tokenized_dir).rglob("*"))
    subsample = trial_data(tokenized_dir, 0.5, 7, str(tmp_path))
    assert sorted(p.name for p in Path(tokenized_dir).rglob("*")) == before, (
        "the tokenize step's output is left as it was"
    )
    splits, full = datasets.load_from_disk(subsample), datasets.load_from_disk(tokenized_dir)
    assert set(splits) == {"train", "validation"} and (Path(subsample) / "tokenizer").is_dir()
    assert len(splits["train"]) == round(len(full["train"]) * 0.5) and len(splits["validation"]) == len(
        full["validation"]
    )
    again = datasets.load_from_disk(trial_data(tokenized_dir, 0.5, 7, str(tmp_path / "other")))
    assert again["train"]["text"] == splits["train"]["text"]  # the same rows for every trial


def test_a_trial_trains_and_scores_the_epoch_it_would_keep(tokenized_dir, tiny_model_dir, tmp_path):
    from textclf.tune.trial import run_trial

    sent = []
    settings = TrainSettings(base_model=tiny_model_dir, epochs=2, batch_size=16, dataloader_workers=0, log_every=100)
    outcome = run_trial(
        tokenized_dir,
        settings,
        TuneSettings(trial_max_steps=3, trial_reports_per_epoch=4),
        {"labels": ["negative", "positive"]},
        lambda m, p: sent.append(p),
        str(tmp_path),
    )
    assert len(outcome.history) == 1, "trial_max_steps=3 ends the trial in its first epoch"
    assert outcome.value == outcome.history[0]["val_accuracy"] and sent == [r["point"] for r in outcome.reports]
    assert not list(tmp_path.iterdir()), "a trial leaves no model or checkpoint behind"


# ----------------------------------------------------------------------------- the study


POINTS = 8


@pytest.fixture
def scripted_trials(monkeypatch):
    """Trials that report a scripted curve instead of training: accuracy grows with learning_rate;
    ``calls`` records the settings of each."""
    from textclf.tune import study
    from textclf.tune.trial import TrialOutcome

    calls = []

    def fake(data_dir, settings, tune, metadata, sink, work_dir):
        calls.append(settings)
        final = 0.5 + 40 * settings.learning_rate
        for point in range(1, POINTS + 1):  # 4 epochs at 2 reports an epoch
            sink({"accuracy": final * point / POINTS, "loss": 1 - final * point / POINTS}, point)
        return TrialOutcome(final, [{"epoch": 1, "val_loss": 1 - final, "val_accuracy": final}], [], 0.01)

    monkeypatch.setattr(study, "run_trial", fake)
    return calls


def scripted_study(tmp_path, n_trials, space=SMALL_SPACE, base=None, **tune):
    from textclf.tune.study import run_study

    return run_study(
        "unused",
        {"fingerprint": "f"},
        base or TrainSettings(learning_rate=1e-3),
        TuneSettings(search_space=space, n_trials=n_trials, **tune),
        str(tmp_path / "store"),
        str(tmp_path / "work"),
    )


def test_trial_0_is_the_current_settings_and_the_best_is_kept(scripted_trials, tmp_path):
    result = scripted_study(tmp_path, 4, tune_pruning=False)
    assert scripted_trials[0].learning_rate == 1e-3 and result.trials[0].params["learning_rate"] == 1e-3
    assert scripted_trials[0].batch_size in (8, 16), "the base batch_size (32) is outside the space: sampled"
    assert len(result.trials) == 4 and all(t.state == "COMPLETE" for t in result.trials)
    best = max(result.trials, key=lambda t: t.value)
    assert (result.best_trial, result.best_params, result.best_value) == (best.number, best.params, best.value)
    assert all(
        1e-4 <= t.params["learning_rate"] <= 1e-2 and t.params.get("batch_size", 16) in (8, 16) for t in result.trials
    )


def test_trial_0_takes_the_base_models_dropout_when_the_settings_keep_it(scripted_trials, tiny_model_dir, tmp_path):
    """hidden_dropout -1 (the base model's) lies outside any range: trial 0 tries the base model's value
    instead of a sampled one, so that it is the default settings exactly."""
    from transformers import AutoConfig

    kept = AutoConfig.from_pretrained(tiny_model_dir).hidden_dropout_prob
    base = TrainSettings(learning_rate=1e-3, base_model=str(tiny_model_dir))
    assert base.hidden_dropout < 0
    space = '{"learning_rate": {"low": 1e-4, "high": 1e-2, "log": true}, "hidden_dropout": {"low": 0.0, "high": 0.5}}'
    result = scripted_study(tmp_path, 2, space=space, base=base, tune_pruning=False)
    assert result.trials[0].params == {"learning_rate": 1e-3, "hidden_dropout": kept}
    assert scripted_trials[0].hidden_dropout == kept


def test_an_interrupted_study_resumes_from_its_finished_trials(scripted_trials, tmp_path):
    import optuna

    first = scripted_study(tmp_path, 2, tune_pruning=False)
    # A process that died in the middle of a trial leaves it RUNNING in the journal.
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "store" / "optuna-journal.log"))
    )
    stale = optuna.load_study(study_name=first.study_name, storage=journal).ask()
    stale.suggest_float("learning_rate", 1e-4, 1e-2, log=True), stale.suggest_categorical("batch_size", [8, 16])
    scripted_trials.clear()
    resumed = scripted_study(tmp_path, 4, tune_pruning=False)
    assert resumed.study_name == first.study_name
    assert len(scripted_trials) == 2, "2 of 4 were finished: only 2 more ran"
    assert scripted_trials[0].learning_rate == stale.params["learning_rate"], "the cut-short trial runs again first"
    assert [t.state for t in resumed.trials] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    scripted_trials.clear()
    assert len(scripted_study(tmp_path, 4, tune_pruning=False).trials) == 5 and not scripted_trials, (
        "a finished study runs nothing"
    )
    other = scripted_study(tmp_path, 1, tune_pruning=False, trial_max_steps=7)
    assert other.study_name != first.study_name, "a different trial budget is a different study"


def test_the_median_pruner_stops_trials_below_the_median(scripted_trials, tmp_path, monkeypatch):
    from textclf.tune import study

    monkeypatch.setattr(study, "baseline", lambda space, base: {"learning_rate": 1e-2})  # a strong first trial
    result = scripted_study(tmp_path, 8)
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned, "weaker trials below the median at the same point must be stopped"
    assert all(t.value is None for t in pruned), "a pruned trial has no score"
    warmup = study.pruner_warmup_points(TuneSettings())
    assert warmup == 4, "two epochs of two reports"
    assert all(warmup <= len(t.reports) < POINTS for t in pruned), "never stopped before the end of its second epoch"
    assert [t.state for t in result.trials[: study.PRUNER_STARTUP_TRIALS]] == ["COMPLETE"] * 3


def test_a_failing_trial_is_recorded_and_the_study_goes_on(scripted_trials, tmp_path, monkeypatch):
    from textclf.tune import study

    original = study.run_trial

    def diverging(data_dir, settings, *args):
        if settings.batch_size == 8:
            raise RuntimeError("validation loss was never finite: [...]")
        return original(data_dir, settings, *args)

    monkeypatch.setattr(study, "run_trial", diverging)
    result = scripted_study(tmp_path, 6, tune_pruning=False)
    failed = [t for t in result.trials if t.state == "FAIL"]
    assert failed and all("never finite" in t.error for t in failed)
    assert all(t.params["batch_size"] == 16 for t in result.trials if t.state == "COMPLETE")


# ----------------------------------------------------------------------------- report and hand-over


def test_the_report_shows_every_trial_with_plots_and_the_train_step_takes_the_best(scripted_trials, tmp_path):
    from textclf.tune.report import apply_tuning, write_result

    result = scripted_study(tmp_path, 3, tune_pruning=False)
    record = write_result(result, str(tmp_path / "out"))
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.count("data:image/png;base64,") == 2 and "test split was not used" in report
    for t in result.trials:
        assert f"| {t.number}" in report and f"{t.value:.4g}" in report
    assert json.loads((tmp_path / "out" / "tuning.json").read_text())["best_params"] == result.best_params
    settings, metadata = apply_tuning(TrainSettings(epochs=2), json.dumps(record), {"fingerprint": "f"})
    assert settings.learning_rate == result.best_params["learning_rate"] and settings.epochs == 2
    assert metadata["tuning"]["best_trial"] == result.best_trial and metadata["fingerprint"] == "f"
    assert apply_tuning(TrainSettings(), "", {}) == (TrainSettings(), {})
    with pytest.raises(SearchSpaceError, match="unknown setting 'lr'"):
        apply_tuning(TrainSettings(), json.dumps({"params": {"lr": 0.1}}), {})


def test_the_trial_entry_point_reports_to_katib_on_stdout_and_to_vertex_through_hypertune(
    tokenized_dir, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    from textclf.tune.trial import main

    common = [
        "--tokenized",
        tokenized_dir,
        "--base_model",
        tiny_model_dir,
        "--batch_size=16.0",
        "--dataloader_workers",
        "0",
        "--trial_max_steps",
        "7",
        "--trial_reports_per_epoch",
        "4",
        "--learning_rate=0.001",
    ]
    main(["--engine", "katib", *common])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("validation_")]
    assert "validation_loss=" in lines[0] and lines[-1].startswith("validation_accuracy=") and "loss" not in lines[-1]
    metric_file = tmp_path / "hypertune" / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(metric_file))
    main(["--engine", "vertex", *common, "--tune_metric", "loss"])
    records = [json.loads(line) for line in metric_file.read_text().splitlines()]
    assert all("validation_loss" in r for r in records) and len(records) >= 2
    assert int(records[-1]["global_step"]) > int(records[-2]["global_step"]), "the score comes last"
    assert math.isfinite(float(records[-1]["validation_loss"]))


def test_the_tune_command_tunes_then_trains_with_the_best_settings(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """``python -m pipelines tune`` through kfp's local runner: trials, the report, the final model
    trained with the best trial's settings and recorded in training.json."""
    from pipelines.__main__ import main

    monkeypatch.chdir(tmp_path)
    params = {
        "source": "sample:160",
        "base_model": tiny_model_dir,
        "max_length": 32,
        "epochs": 1,
        "batch_size": 16,
        "n_trials": 2,
        "trial_max_steps": 2,
        "search_space": '{"learning_rate": {"low": 1e-4, "high": 1e-2, "log": true}}',
        "min_accuracy": 0.0,
        "min_mft_pass_rate": 0.0,
        "min_inv_pass_rate": 0.0,
        "min_dir_pass_rate": 0.0,
    }
    main(
        [
            "tune",
            "--runs-dir",
            str(tmp_path / "runs"),
            *[arg for k, v in params.items() for arg in ("--param", f"{k}={v}")],
        ]
    )
    out = capsys.readouterr().out
    summary = dict(
        line.strip().split(": ", 1) for line in out[out.rindex("\nrun: ") + 1 :].splitlines() if ": " in line
    )
    report, model = Path(summary["tuning_report"]).read_text(), Path(summary["model"])
    training = json.loads((model / "training.json").read_text())
    tuning = training["tuning"]
    assert tuning["engine"] == "optuna" and tuning["trials"] == 2
    assert training["settings"]["learning_rate"] == tuning["params"]["learning_rate"]
    assert "| 0" in report and "| 1" in report and "data:image/png" in report
    assert Path(tuning["storage"]).parent == (tmp_path / "runs" / "studies").resolve(), "kept where a rerun finds it"
