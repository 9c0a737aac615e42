"""Gate step: decide whether the new model may be deployed.

The metrics are those of the backend that will serve (evaluate scored the test split with it), and
one rule bounds how often that backend's labels differ from fp32 PyTorch's on the validation split.
The gate fails closed: a metric that is missing or not a number blocks deployment, and so does
a champion whose metrics were asked for but cannot be read (unless told otherwise). Every rule
is reported with its numbers, and the decision names the rule that decided it.

Adding a rule: a function of (metrics, settings) in :data:`RULES`, and the setting it reads on
:class:`GateSettings` (CONTRIBUTING.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from textclf.tracking import TrackingSettings

from textclf.report import markdown_table
from textclf.settings import backend_flip_rate_setting, setting

PASS, FAIL = "pass", "fail"
MISSING_CHAMPION_POLICIES = ("fail", "ignore")
WANDB_CHAMPION = "wandb"


@dataclass
class GateSettings:
    """The rules a challenger model must pass."""

    min_accuracy: float = setting(0.8, "Lowest test accuracy that may deploy.")
    min_class_recall: float = setting(
        0.0,
        "Lowest test recall any class (with test texts) may have, e.g. 0.5 blocks a "
        "model that misses most of a rare class; 0 turns the rule off.",
    )
    champion_metrics: str = setting(
        "",
        "metrics.json (path or gs:// URI) of the production model, or wandb for the "
        "metrics of the model holding the W&B production alias; used when "
        "live_model_uri is empty. Empty: no champion yet.",
    )
    max_regression: float = setting(0.01, "How far below the champion's compare_metric the new model may be.")
    compare_metric: str = setting("accuracy", "The metric compared with the champion's (higher is better).")
    missing_champion: str = setting(
        "fail",
        "fail (block) or ignore (decide on the other rules), when a named champion's metrics cannot be had.",
        choices=MISSING_CHAMPION_POLICIES,
    )
    min_mft_pass_rate: float = setting(
        0.7,
        "Lowest pass rate of the minimum-functionality behavioural suites (a "
        "suite file's, e.g. sentiment: short phrases, negation, intensifiers); not "
        "checked when no suite file fits the labels.",
    )
    min_inv_pass_rate: float = setting(
        0.85,
        "Lowest pass rate of the invariance behavioural suites (the task-neutral "
        "ones every model gets: typos, case, punctuation, whitespace, names and places, "
        "numbers, URLs; and a suite file's).",
    )
    min_dir_pass_rate: float = setting(
        0.7,
        "Lowest pass rate of the directional behavioural suites (a suite file's); "
        "not checked when no suite file fits the labels.",
    )
    max_backend_flip_rate: float = backend_flip_rate_setting()

    def __post_init__(self) -> None:
        if self.missing_champion not in MISSING_CHAMPION_POLICIES:
            raise ValueError(
                f"missing_champion must be one of {MISSING_CHAMPION_POLICIES}, got {self.missing_champion!r}"
            )


@dataclass
class Rule:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    rules: list[Rule] = field(default_factory=list)
    champion: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return bool(self.rules) and all(rule.passed for rule in self.rules)

    @property
    def deciding_rule(self) -> str:
        failed = [rule.name for rule in self.rules if not rule.passed]
        return failed[0] if failed else "all rules passed"


def finite(value: object) -> TypeIs[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _section(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    """``metrics[key]`` when it is a mapping, else empty: a missing section fails its rule, not the gate."""
    value = metrics.get(key)
    return value if isinstance(value, dict) else {}


def read_metrics(uri: str) -> dict[str, Any]:
    """A ``metrics.json`` from a local path or URI (``gs://``...): the file, or the folder holding it."""
    from textclf.platform import storage

    return json.loads(storage.read_text(storage.join(uri, "metrics.json") if storage.is_dir(uri) else uri))


def decide(
    metrics: dict[str, Any], settings: GateSettings, tracking_settings: TrackingSettings | None = None
) -> Decision:
    """Apply the rules to the challenger's ``metrics``: :data:`RULES`, then the champion's (when given)."""
    metric = settings.compare_metric
    for name in dict.fromkeys(("accuracy", metric)):
        if not finite(metrics.get(name)):
            return Decision([Rule("metrics present", False, f"`{name}` is {metrics.get(name)!r}: not a number")])
    decision = Decision([rule for check in RULES if (rule := check(metrics, settings)) is not None])
    champion, problem = find_champion(metrics, settings, tracking_settings)
    if problem:
        ignored = settings.missing_champion == "ignore"
        suffix = " (ignored: missing_champion=ignore)" if ignored else " (missing_champion=fail)"
        decision.rules.append(Rule("champion metrics readable", ignored, problem + suffix))
    if champion is None:
        return decision
    decision.champion = champion
    floor = champion[metric] - settings.max_regression
    decision.rules.append(
        Rule(
            "no regression vs champion",
            metrics[metric] >= floor,
            f"{metric} {metrics[metric]:.4f} vs champion {champion[metric]:.4f} - max_regression "
            f"{settings.max_regression:.4f} = {floor:.4f} ({champion['source']})",
        )
    )
    return decision


def accuracy_rule(metrics: dict[str, Any], settings: GateSettings) -> Rule:
    """Test accuracy against ``min_accuracy`` (``decide`` has checked that it is a number)."""
    accuracy = metrics["accuracy"]
    return Rule(
        "min accuracy",
        accuracy >= settings.min_accuracy,
        f"accuracy {accuracy:.4f} vs minimum {settings.min_accuracy:.4f}",
    )


def class_recall_rule(metrics: dict[str, Any], settings: GateSettings) -> Rule | None:
    """The lowest per-class recall against ``min_class_recall`` (fails closed when the metrics lack it);
    None (not checked) when ``min_class_recall`` is 0."""
    if settings.min_class_recall <= 0:
        return None
    lowest, label = metrics.get("min_class_recall"), metrics.get("min_recall_class")
    if not finite(lowest):
        return Rule("min class recall", False, f"`min_class_recall` is {lowest!r}: not a number")
    return Rule(
        "min class recall",
        lowest >= settings.min_class_recall,
        f"lowest recall {lowest:.4f} (class {label}) vs minimum {settings.min_class_recall:.4f}",
    )


def behaviour_rule(metrics: dict[str, Any], settings: GateSettings) -> Rule:
    """The behavioural pass rates against their minimums; a type no suite of which ran (MFT and DIR need a
    suite file that fits the labels) is named and not checked; no suite at all fails."""
    from textclf.behaviour import BehaviourReport

    if not isinstance(metrics.get("behaviour"), dict):
        return Rule("behavioural tests", False, "no behavioural test results in the metrics")
    minimums = {"mft": settings.min_mft_pass_rate, "inv": settings.min_inv_pass_rate, "dir": settings.min_dir_pass_rate}
    report = BehaviourReport.from_dict(metrics["behaviour"])
    failures = report.check(minimums)
    if failures:
        return Rule("behavioural tests", False, "; ".join(failures))
    rates, run = report.pass_rates(), report.kinds_run()
    checked = [f"{k} {rates[k]:.3f} >= {v:.2f}" for k, v in minimums.items() if k in run]
    unchecked = [k for k in minimums if k not in run]
    note = f"; {', '.join(unchecked)}: no suite of that type fits these labels" if unchecked else ""
    return Rule("behavioural tests", True, ", ".join(checked) + note)


def serving_agreement_rule(metrics: dict[str, Any], settings: GateSettings) -> Rule:
    """The serving backend (whose test metrics the other rules read) changes at most
    ``max_backend_flip_rate`` of the validation labels against fp32 PyTorch, as the optimize step
    measured; missing or not-a-number measurements fail."""
    serving = _section(metrics, "serving")
    backend = serving.get("backend", "?")
    validation = _section(serving, "validation")
    rate = validation.get("flip_rate")
    if not finite(rate):
        return Rule(
            "serving backend agrees with fp32",
            False,
            f"no validation agreement with fp32 for serving backend `{backend}` (flip_rate {rate!r}): the "
            "optimize step did not measure it",
        )
    detail = (
        f"`{backend}` changed {validation.get('label_flips')} of {validation.get('texts')} validation labels "
        f"({100 * rate:.2f}%) vs maximum {100 * settings.max_backend_flip_rate:.2f}%; largest probability "
        f"change {validation.get('max_probability_change', math.nan):.4f}"
    )
    return Rule("serving backend agrees with fp32", rate <= settings.max_backend_flip_rate, detail)


# The challenger's own rules, in report order: each reads the metrics and the settings and returns its
# Rule, or None when its setting turns it off. The champion comparison follows them (``decide``).
RULES: list[Callable[[dict[str, Any], GateSettings], Rule | None]] = [
    accuracy_rule,
    class_recall_rule,
    behaviour_rule,
    serving_agreement_rule,
]


def find_champion(
    metrics: dict[str, Any], settings: GateSettings, tracking_settings: TrackingSettings | None = None
) -> tuple[dict[str, Any] | None, str]:
    """The champion's metrics and where they came from, or the problem that kept them away.

    Preferred: the champion scored by the evaluate step on the same test split. Else the stored
    ``metrics.json`` named by ``champion_metrics``.
    """
    metric = settings.compare_metric
    if "champion" in metrics:
        champion, source = metrics["champion"], "scored on the same test split"
    elif "champion_error" in metrics:
        return None, f"the champion model could not be scored: {metrics['champion_error']}"
    elif settings.champion_metrics == WANDB_CHAMPION:
        from textclf import tracking

        try:
            champion, source = (
                tracking.champion_metrics(tracking_settings or tracking.TrackingSettings()),
                "W&B production alias",
            )
        except Exception as error:  # noqa: BLE001 - W&B unreachable with a key: fail closed
            return None, f"could not read the champion's metrics from W&B: {error}"
        if champion is None:
            return None, "no model holds the W&B production alias (or tracking is not online)"
    elif settings.champion_metrics:
        try:
            champion, source = read_metrics(settings.champion_metrics), f"from {settings.champion_metrics}"
        except Exception as error:  # noqa: BLE001 - any failure to read is the same "missing champion" case
            return None, f"could not read champion metrics at `{settings.champion_metrics}`: {error}"
    else:
        return None, ""
    if not finite(champion.get(metric)):
        return None, f"champion `{metric}` is {champion.get(metric)!r} ({source})"
    return {**champion, "source": source}, ""


def render_decision(decision: Decision, metrics: dict[str, Any]) -> str:
    verdict = "**PASS: deploy**" if decision.passed else "**FAIL: do not deploy**"
    parts = [
        "# Gate decision",
        f"{verdict} (decided by: {decision.deciding_rule})",
        markdown_table(
            ["rule", "result", "detail"], [[r.name, PASS if r.passed else FAIL, r.detail] for r in decision.rules]
        ),
    ]
    if decision.champion is not None:
        from textclf.evaluate import comparison_table

        parts += [
            f"## Challenger vs champion ({decision.champion['source']})",
            comparison_table(metrics, decision.champion),
        ]
    return "\n\n".join(parts) + "\n"


def gate(
    metrics_path: str, settings: GateSettings, report_path: str, tracking_settings: TrackingSettings | None = None
) -> Decision:
    """Read the challenger's ``metrics.json``, decide, and write the reasons as Markdown.

    A metrics file that is missing or unreadable is a failed gate, not an exception: the pipeline
    must show the reason and not deploy. ``tracking_settings`` (W&B project) serve
    ``champion_metrics="wandb"``.
    """
    metrics: dict[str, Any] = {}
    try:
        metrics = read_metrics(metrics_path)
    except (OSError, ValueError) as error:
        decision = Decision([Rule("metrics present", False, f"could not read `{metrics_path}`: {error}")])
    else:
        decision = decide(metrics, settings, tracking_settings)
    Path(report_path).write_text(render_decision(decision, metrics))
    return decision
