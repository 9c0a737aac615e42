"""Gate step: pass or fail, with the reasons (``textclf.gate``); the pipeline's ``dsl.If`` reads the one output."""

from kfp import dsl

from components.step import step
from textclf.gate import GateSettings
from textclf.tracking import TrackingSettings


# Settings named again for kfp (see components/step.py, which checks them against the dataclasses).
@step(GateSettings, TrackingSettings)
def gate_op(
    min_accuracy: float,
    min_class_recall: float,
    champion_metrics: str,
    max_regression: float,
    compare_metric: str,
    missing_champion: str,
    min_mft_pass_rate: float,
    min_inv_pass_rate: float,
    min_dir_pass_rate: float,
    max_backend_flip_rate: float,
    wandb_project: str,
    wandb_entity: str,
    wandb_api_key_secret: str,
    evaluation: dsl.Input[dsl.Artifact],
    decision: dsl.Output[dsl.Markdown],
) -> str:
    """Decide whether the challenger may be deployed; returns "pass" or "fail".

    Args:
        evaluation: The evaluate step's directory with metrics.json.
        decision: The rules, their numbers and the verdict, as Markdown.
    """
    from textclf.gate import FAIL, PASS, GateSettings, gate
    from textclf.settings import from_values
    from textclf.tracking import TrackingSettings

    result = gate(
        evaluation.path, from_values(GateSettings, locals()), decision.path, from_values(TrackingSettings, locals())
    )
    decision.metadata["deciding_rule"] = result.deciding_rule
    return PASS if result.passed else FAIL
