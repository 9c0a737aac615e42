"""Gate step: decide whether the new model may be deployed.

The gate fails closed: a metric that is missing or not a number blocks deployment, and so does
a champion whose metrics were asked for but cannot be read (unless told otherwise). Every rule
is reported with its numbers, and the decision names the rule that decided it.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kfp import dsl

from components.images import cpu_step
from components.report import markdown_table

PASS, FAIL = "pass", "fail"
MISSING_CHAMPION_POLICIES = ("fail", "ignore")
WANDB_CHAMPION = "wandb"


@dataclass
class GateSettings:
    """The rules a challenger model must pass.

    Attributes:
        min_accuracy: lowest test accuracy that may deploy.
        champion_metrics: ``metrics.json`` of the model in production (local path or ``gs://``), or
            ``wandb`` for the metrics of the model holding the W&B ``production`` alias; empty when
            there is none yet.
        max_regression: how far below the champion's ``compare_metric`` the challenger may be.
        compare_metric: the metric compared with the champion (higher is better).
        missing_champion: what to do when a champion was named (``champion_metrics``, or a champion
            model the evaluate step could not score) but its metrics cannot be had: ``fail`` (block,
            the default) or ``ignore`` (decide on the other rules).
        min_mft_pass_rate: lowest pass rate of the minimum-functionality suites (negation, ...).
        min_inv_pass_rate: lowest pass rate of the invariance suites (typos, names, ...).
        min_dir_pass_rate: lowest pass rate of the directional suites.
        allow_behaviour_not_applicable: let models whose labels are not sentiment (e.g. ham/spam), for
            which the suites do not apply, pass this rule; otherwise they are blocked.
        tracking: W&B project and entity, for ``champion_metrics="wandb"``.
    """

    min_accuracy: float = 0.8
    champion_metrics: str = ""
    max_regression: float = 0.01
    compare_metric: str = "accuracy"
    missing_champion: str = "fail"
    min_mft_pass_rate: float = 0.7
    min_inv_pass_rate: float = 0.85
    min_dir_pass_rate: float = 0.7
    allow_behaviour_not_applicable: bool = False
    tracking: "TrackingSettings | None" = None

    def __post_init__(self):
        if self.missing_champion not in MISSING_CHAMPION_POLICIES:
            raise ValueError(f"missing_champion must be one of {MISSING_CHAMPION_POLICIES}, got {self.missing_champion!r}")


@dataclass
class Rule:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    rules: list[Rule] = field(default_factory=list)
    champion: dict | None = None

    @property
    def passed(self) -> bool:
        return bool(self.rules) and all(rule.passed for rule in self.rules)

    @property
    def deciding_rule(self) -> str:
        failed = [rule.name for rule in self.rules if not rule.passed]
        return failed[0] if failed else "all rules passed"


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_metrics(uri: str) -> dict:
    """A ``metrics.json`` from a local path or ``gs://`` URI (directory or file)."""
    if uri.startswith("gs://"):
        from components.storage import read_text

        text = read_text(uri if uri.endswith(".json") else uri.rstrip("/") + "/metrics.json")
    else:
        path = Path(uri)
        text = (path / "metrics.json" if path.is_dir() else path).read_text()
    return json.loads(text)


def decide(metrics: dict, settings: GateSettings) -> Decision:
    """Apply the rules to the challenger's ``metrics`` (and the champion's, when given)."""
    decision = Decision()
    metric = settings.compare_metric
    for name in dict.fromkeys(("accuracy", metric)):
        if not finite(metrics.get(name)):
            decision.rules.append(Rule("metrics present", False, f"`{name}` is {metrics.get(name)!r}: not a number"))
            return decision
    accuracy = metrics["accuracy"]
    decision.rules.append(
        Rule("min accuracy", accuracy >= settings.min_accuracy, f"accuracy {accuracy:.4f} vs minimum {settings.min_accuracy:.4f}")
    )
    decision.rules.append(behaviour_rule(metrics, settings))
    champion, problem = find_champion(metrics, settings)
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


def behaviour_rule(metrics: dict, settings: GateSettings) -> Rule:
    from components.behaviour import BehaviourReport

    if not isinstance(metrics.get("behaviour"), dict):
        return Rule("behavioural tests", False, "no behavioural test results in the metrics")
    minimums = {"mft": settings.min_mft_pass_rate, "inv": settings.min_inv_pass_rate, "dir": settings.min_dir_pass_rate}
    report = BehaviourReport.from_dict(metrics["behaviour"])
    failures = report.check(minimums, allow_not_applicable=settings.allow_behaviour_not_applicable)
    if failures:
        return Rule("behavioural tests", False, "; ".join(failures))
    if not report.applicable:
        return Rule("behavioural tests", True, f"not applicable ({report.not_applicable_reason}); allowed")
    rates = report.pass_rates()
    return Rule("behavioural tests", True, ", ".join(f"{k} {rates[k]:.3f} >= {v:.2f}" for k, v in minimums.items()))


def find_champion(metrics: dict, settings: GateSettings) -> tuple[dict | None, str]:
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
        from components import tracking

        try:
            champion, source = tracking.champion_metrics(settings.tracking or tracking.TrackingSettings()), "W&B production alias"
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


def render_decision(decision: Decision, metrics: dict) -> str:
    verdict = "**PASS: deploy**" if decision.passed else "**FAIL: do not deploy**"
    parts = [
        "# Gate decision",
        f"{verdict} (decided by: {decision.deciding_rule})",
        markdown_table(["rule", "result", "detail"], [[r.name, PASS if r.passed else FAIL, r.detail] for r in decision.rules]),
    ]
    if decision.champion is not None:
        from components.evaluate import comparison_table

        parts += [f"## Challenger vs champion ({decision.champion['source']})", comparison_table(metrics, decision.champion)]
    return "\n\n".join(parts) + "\n"


def gate(metrics_path: str, settings: GateSettings, report_path: str) -> Decision:
    """Read the challenger's ``metrics.json``, decide, and write the reasons as Markdown.

    A metrics file that is missing or unreadable is a failed gate, not an exception: the pipeline
    must show the reason and not deploy.
    """
    try:
        metrics = read_metrics(metrics_path)
    except (OSError, ValueError) as error:
        metrics = {}
        decision = Decision([Rule("metrics present", False, f"could not read `{metrics_path}`: {error}")])
    else:
        decision = decide(metrics, settings)
    Path(report_path).write_text(render_decision(decision, metrics))
    return decision


@cpu_step
def gate_op(
    evaluation: dsl.Input[dsl.Artifact],
    min_accuracy: float,
    champion_metrics: str,
    max_regression: float,
    missing_champion: str,
    min_mft_pass_rate: float,
    min_inv_pass_rate: float,
    min_dir_pass_rate: float,
    allow_behaviour_not_applicable: bool,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    decision: dsl.Output[dsl.Markdown],
) -> str:
    """Decide whether the challenger may be deployed; returns "pass" or "fail".

    Args:
        evaluation: The evaluate step's directory with metrics.json.
        min_accuracy: Lowest test accuracy that may deploy.
        champion_metrics: metrics.json (path or gs:// URI) of the model in production, or wandb for the
            W&B production alias; empty if none.
        max_regression: How far below the champion's accuracy the challenger may be.
        missing_champion: fail (block) or ignore, when a named champion's metrics cannot be had.
        min_mft_pass_rate: Lowest pass rate of the minimum-functionality behavioural suites.
        min_inv_pass_rate: Lowest pass rate of the invariance behavioural suites.
        min_dir_pass_rate: Lowest pass rate of the directional behavioural suites.
        allow_behaviour_not_applicable: Let non-sentiment models (suites not applicable) pass that rule.
        wandb_project: W&B project, for champion_metrics=wandb.
        wandb_entity: W&B team or user; empty uses the key's default.
        wandb_api_key_secret: Secret Manager version holding the W&B key (Vertex); empty uses WANDB_API_KEY.
        decision: The rules, their numbers and the verdict, as Markdown.
    """
    from components.gate import FAIL, PASS, GateSettings, gate
    from components.tracking import TrackingSettings

    settings = GateSettings(
        min_accuracy=min_accuracy, champion_metrics=champion_metrics,
        max_regression=max_regression, missing_champion=missing_champion, min_mft_pass_rate=min_mft_pass_rate,
        min_inv_pass_rate=min_inv_pass_rate, min_dir_pass_rate=min_dir_pass_rate,
        allow_behaviour_not_applicable=allow_behaviour_not_applicable,
        tracking=TrackingSettings(project=wandb_project, entity=wandb_entity, api_key_secret=wandb_api_key_secret),
    )
    result = gate(evaluation.path, settings, decision.path)
    decision.metadata["deciding_rule"] = result.deciding_rule
    return PASS if result.passed else FAIL
