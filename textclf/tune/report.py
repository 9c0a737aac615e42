"""What a tuning run leaves behind, whatever the engine: ``tuning.json`` (the best settings and every
trial) and ``report.md`` (every trial's parameters, metric and duration, with plots), and how the
final training takes the best settings."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

from textclf.report import figure_markdown, markdown_table, new_figure
from textclf.tune.study import StudyResult, TrialRecord

RESULT_FILE = "tuning.json"
REPORT_FILE = "report.md"


def write_result(result: StudyResult, out_dir: str) -> dict:
    """``tuning.json`` and ``report.md`` in ``out_dir``; returns what the final training records."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULT_FILE).write_text(json.dumps(dataclasses.asdict(result), indent=2, default=str))
    (out / REPORT_FILE).write_text(render_report(result))
    return result.record()


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _trial_rows(result: StudyResult) -> list[list]:
    names = list(result.space)
    rows = []
    for t in result.trials:
        best = " **best**" if t.number == result.best_trial else ""
        note = t.error or (
            f"stopped by the pruner at point {t.reports[-1]['point']}" if t.state == "PRUNED" and t.reports else ""
        )
        note = " ".join(filter(None, [t.name, note]))
        rows.append(
            [
                f"{t.number}{best}",
                t.state.lower(),
                *[_cell(t.params.get(n)) for n in names],
                _cell(t.value),
                f"{t.seconds:.0f} s" if t.seconds is not None else "",
                note,
            ]
        )
    return rows


def _finished(trials: list[TrialRecord]) -> list[TrialRecord]:
    return [t for t in trials if t.value is not None and math.isfinite(t.value)]


def plot_history(result: StudyResult) -> str:
    """The metric of every trial in order, the best so far, and where pruned trials were stopped."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure(6, 3.5)
    done = _finished(result.trials)
    scores = [t.value for t in done if t.value is not None]  # all of them: _finished keeps the scored trials
    best_so_far = list(itertools.accumulate(scores, max if result.direction == "maximize" else min))
    ax.plot([t.number for t in done], scores, "o", label="trial")
    ax.step([t.number for t in done], best_so_far, where="post", label="best so far")
    pruned = [t for t in result.trials if t.state == "PRUNED" and t.reports]
    if pruned:
        ax.plot(
            [t.number for t in pruned],
            [t.reports[-1][result.metric] for t in pruned],
            "x",
            color="grey",
            label="pruned (last report)",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {result.metric}")
    ax.legend(loc="best")
    return figure_markdown(fig, f"validation {result.metric} of each trial")


def plot_parameters(result: StudyResult) -> str:
    """The metric against each tuned setting, one panel each (three a row; log axes where the space is)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    names = list(result.space)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.8 * rows), squeeze=False, sharey=True)
    done = _finished(result.trials)
    for ax, name in zip(axes.flat, names):
        values = [t.params.get(name) for t in done]
        ax.plot([str(v) if isinstance(v, (bool, str)) else v for v in values], [t.value for t in done], "o")
        if result.space[name].get("log"):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(name)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(f"validation {result.metric}")
    fig.tight_layout()
    return figure_markdown(fig, f"validation {result.metric} against each tuned setting")


def render_report(result: StudyResult) -> str:
    base = result.base_settings
    changes = [[name, _cell(base.get(name)), _cell(value)] for name, value in result.best_params.items()]
    space = [[name, json.dumps(entry)] for name, entry in result.space.items()]
    counts = {state: sum(t.state == state for t in result.trials) for state in ("COMPLETE", "PRUNED", "FAIL")}
    return (
        "\n\n".join(
            [
                f"# Tuning: {result.study_name}",
                f"{len(result.trials)} trials with {result.engine} ({counts['COMPLETE']} complete, "
                f"{counts['PRUNED']} pruned, {counts['FAIL']} failed), each scored on the validation split "
                f"({result.metric}, {result.direction}d); the test split was not used. "
                f"Best: trial {result.best_trial}, validation {result.metric} "
                f"**{result.best_value:.4f}**. Study kept in `{result.storage}`.",
                "## Best settings (the final training uses them)",
                markdown_table(["setting", "before", "tuned"], changes),
                plot_history(result),
                plot_parameters(result),
                "## Trials",
                markdown_table(
                    ["trial", "state", *result.space, f"validation {result.metric}", "duration", "note"],
                    _trial_rows(result),
                ),
                "## Search space",
                markdown_table(["setting", "values"], space),
            ]
        )
        + "\n"
    )


def apply_tuning(settings, tuned: str, metadata: dict):
    """``settings`` with the tuned values of ``tuned`` (the tune step's JSON output; empty: none), and
    ``metadata`` with the tuning record under ``tuning`` (``training.json`` and W&B keep it).

    Raises:
        SearchSpaceError: a tuned name is not a TrainSettings field or its value has the wrong type.
    """
    from dataclasses import replace

    from textclf.tune.space import parse_space

    if not tuned.strip():
        return settings, metadata
    record = json.loads(tuned)
    params = record.get("params", {})
    # Each value is checked as a one-value space of its field: the same rules as the search space.
    checked = parse_space({name: {"choices": [value]} for name, value in params.items()}) if params else None
    values = {p.name: p.choices[0] for p in checked.parameters} if checked else {}
    return replace(settings, **values), {**metadata, "tuning": record}


def log_to_tracking(run, result: StudyResult) -> None:
    """Each trial as a step of the tune run (W&B draws its parallel coordinates), the best in the summary."""
    for t in result.trials:
        row = {f"trial/{name}": value for name, value in t.params.items() if not isinstance(value, str)}
        row.update({"trial/pruned": t.state == "PRUNED", "trial/failed": t.state == "FAIL"})
        if t.value is not None:
            row[f"trial/validation_{result.metric}"] = t.value
        if t.seconds is not None:
            row["trial/seconds"] = t.seconds
        run.log(row, step=t.number)
    run.set_summary(
        {
            f"best/validation_{result.metric}": result.best_value,
            "best/trial": result.best_trial,
            **{f"best/{name}": value for name, value in result.best_params.items()},
        }
    )


def publish(result: StudyResult, out_dir: str, tracking_settings, config: dict) -> dict:
    """``tuning.json`` and ``report.md`` in ``out_dir``, and a W&B run (job type ``tune``) with every
    trial; returns the record the final training takes (:func:`apply_tuning`)."""
    from textclf import tracking

    record = write_result(result, out_dir)
    with tracking.start(tracking_settings, job_type="tune", config={**config, "study": result.study_name}) as run:
        log_to_tracking(run, result)
    return record
