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
COMPARED = ("accuracy", "f1", "precision", "recall", "roc_auc", "loss")


@dataclass
class GateSettings:
    """The rules a challenger model must pass.

    Attributes:
        min_accuracy: lowest test accuracy that may deploy.
        champion_metrics: ``metrics.json`` of the model in production (local path or ``gs://``);
            empty when there is none yet.
        max_regression: how far below the champion's ``compare_metric`` the challenger may be.
        compare_metric: the metric compared with the champion (higher is better).
        missing_champion: what to do when ``champion_metrics`` is given but cannot be read:
            ``fail`` (block, the default) or ``ignore`` (decide on the other rules).
    """

    min_accuracy: float = 0.8
    champion_metrics: str = ""
    max_regression: float = 0.01
    compare_metric: str = "accuracy"
    missing_champion: str = "fail"

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
    if not settings.champion_metrics:
        return decision
    try:
        champion = read_metrics(settings.champion_metrics)
        if not finite(champion.get(metric)):
            raise ValueError(f"`{metric}` is {champion.get(metric)!r}")
    except Exception as error:  # noqa: BLE001 - any failure to read is the same "missing champion" case
        ignored = settings.missing_champion == "ignore"
        decision.rules.append(
            Rule(
                "champion metrics readable",
                ignored,
                f"could not read champion metrics at `{settings.champion_metrics}`: {error}"
                + (" (ignored: missing_champion=ignore)" if ignored else " (missing_champion=fail)"),
            )
        )
        return decision
    decision.champion = champion
    floor = champion[metric] - settings.max_regression
    decision.rules.append(
        Rule(
            "no regression vs champion",
            metrics[metric] >= floor,
            f"{metric} {metrics[metric]:.4f} vs champion {champion[metric]:.4f} - max_regression "
            f"{settings.max_regression:.4f} = {floor:.4f}",
        )
    )
    return decision


def render_decision(decision: Decision, metrics: dict) -> str:
    verdict = "**PASS: deploy**" if decision.passed else "**FAIL: do not deploy**"
    parts = [
        "# Gate decision",
        f"{verdict} (decided by: {decision.deciding_rule})",
        markdown_table(["rule", "result", "detail"], [[r.name, PASS if r.passed else FAIL, r.detail] for r in decision.rules]),
    ]
    if decision.champion is not None:
        rows = []
        for name in COMPARED:
            new, old = metrics.get(name), decision.champion.get(name)
            diff = f"{new - old:+.4f}" if finite(new) and finite(old) else "n/a"
            rows.append([name, f"{new:.4f}" if finite(new) else new, f"{old:.4f}" if finite(old) else old, diff])
        parts += ["## Challenger vs champion", markdown_table(["metric", "challenger", "champion", "difference"], rows)]
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
    decision: dsl.Output[dsl.Markdown],
) -> str:
    """Decide whether the challenger may be deployed; returns "pass" or "fail".

    Args:
        evaluation: The evaluate step's directory with metrics.json.
        min_accuracy: Lowest test accuracy that may deploy.
        champion_metrics: metrics.json (path or gs:// URI) of the model in production; empty if none.
        max_regression: How far below the champion's accuracy the challenger may be.
        missing_champion: fail (block) or ignore, when champion_metrics is given but unreadable.
        decision: The rules, their numbers and the verdict, as Markdown.
    """
    from components.gate import FAIL, PASS, GateSettings, gate

    settings = GateSettings(
        min_accuracy=min_accuracy, champion_metrics=champion_metrics,
        max_regression=max_regression, missing_champion=missing_champion,
    )
    result = gate(evaluation.path, settings, decision.path)
    decision.metadata["deciding_rule"] = result.deciding_rule
    return PASS if result.passed else FAIL
