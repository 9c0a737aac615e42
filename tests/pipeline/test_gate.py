"""Gate: fails closed, applies each rule, and says which rule decided."""

import json
import math

import pytest

from textclf.gate import GateSettings, decide, gate

GOOD_BEHAVIOUR = {
    "applicable": True,
    "not_applicable_reason": "",
    "label_names": ["negative", "positive"],
    "positive_label": 1,
    "negative_label": 0,
    "settings": {},
    "suites": [
        {
            "name": "mft_negation",
            "type": "MFT",
            "description": "",
            "cases": 10,
            "passed": 9,
            "pass_rate": 0.9,
            "failures": [],
        },
        {
            "name": "inv_typos",
            "type": "INV",
            "description": "",
            "cases": 10,
            "passed": 10,
            "pass_rate": 1.0,
            "failures": [],
        },
        {
            "name": "dir_add_positive",
            "type": "DIR",
            "description": "",
            "cases": 10,
            "passed": 8,
            "pass_rate": 0.8,
            "failures": [],
        },
    ],
}


def serving(flip_rate=0.002, texts=1000, backend="onnx-int8"):
    """What evaluate records of the serving backend: the optimize step's validation agreement with fp32."""
    return {
        "backend": backend,
        "validation": {
            "texts": texts,
            "label_flips": round(flip_rate * texts),
            "flip_rate": flip_rate,
            "max_probability_change": 0.05,
        },
    }


def metrics(accuracy=0.9, **extra):
    return {"accuracy": accuracy, "f1": accuracy, "behaviour": GOOD_BEHAVIOUR, "serving": serving(), **extra}


def test_good_metrics_pass():
    decision = decide(metrics(), GateSettings(min_accuracy=0.8))
    assert decision.passed and decision.deciding_rule == "all rules passed"


@pytest.mark.parametrize(
    "bad", [{}, {"accuracy": math.nan}, {"accuracy": None}, {"accuracy": "0.9"}, {"accuracy": True}]
)
def test_missing_or_nan_metrics_fail_closed(bad):
    decision = decide(bad, GateSettings(min_accuracy=0.0))
    assert not decision.passed and decision.deciding_rule == "metrics present"


def test_an_unreadable_metrics_file_fails_closed(tmp_path):
    decision = gate(str(tmp_path / "nope.json"), GateSettings(min_accuracy=0.0), str(tmp_path / "decision.md"))
    assert not decision.passed
    assert "could not read" in (tmp_path / "decision.md").read_text()


def test_below_min_accuracy_blocks_and_says_so(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(0.7)))
    decision = gate(str(tmp_path), GateSettings(min_accuracy=0.8), str(tmp_path / "decision.md"))
    assert not decision.passed and decision.deciding_rule == "min accuracy"
    text = (tmp_path / "decision.md").read_text()
    assert "FAIL" in text and "0.7000 vs minimum 0.8000" in text


def test_behaviour_rule_fails_closed_and_applies_minimums():
    assert decide({"accuracy": 0.9}, GateSettings()).deciding_rule == "behavioural tests"
    strict = GateSettings(min_dir_pass_rate=0.95)
    assert decide(metrics(), strict).deciding_rule == "behavioural tests"
    no_suite = {**GOOD_BEHAVIOUR, "suites": []}
    assert not decide(metrics(behaviour=no_suite), GateSettings()).passed, "no suite at all fails closed"
    old_not_applicable = {**no_suite, "applicable": False, "not_applicable_reason": "labels ham/spam"}
    assert not decide(metrics(behaviour=old_not_applicable), GateSettings()).passed


def test_a_model_with_only_task_neutral_suites_is_judged_on_invariance_alone():
    """A spam or intent model: no suite file fits its labels, the task-neutral INV suites decide."""
    neutral = {
        "label_names": ["ham", "spam"],
        "settings": {},
        "suites": [
            {
                "name": "neutral_typos",
                "type": "INV",
                "description": "",
                "cases": 40,
                "passed": 38,
                "failures": [],
                "source": "task-neutral",
            }
        ],
    }
    decision = decide(metrics(behaviour=neutral), GateSettings())
    assert decision.passed
    assert "inv 0.950 >= 0.85; mft, dir: no suite of that type fits these labels" in decision.rules[1].detail
    assert not decide(metrics(behaviour=neutral), GateSettings(min_inv_pass_rate=0.96)).passed


@pytest.mark.parametrize("flip_rate, passed", [(0.0, True), (0.005, True), (0.006, False), (0.2, False)])
def test_the_serving_backend_may_change_at_most_the_bound_of_validation_labels(flip_rate, passed):
    decision = decide(metrics(serving=serving(flip_rate)), GateSettings(max_backend_flip_rate=0.005))
    assert decision.passed is passed
    [rule] = [rule for rule in decision.rules if rule.name == "serving backend agrees with fp32"]
    assert rule.passed is passed and f"{100 * flip_rate:.2f}%" in rule.detail and "`onnx-int8`" in rule.detail
    if not passed:
        assert decision.deciding_rule == "serving backend agrees with fp32"


@pytest.mark.parametrize(
    "recorded",
    [
        None,
        {"backend": "onnx"},
        {"backend": "onnx", "validation": None},
        {"backend": "onnx", "validation": {"flip_rate": math.nan}},
        {"backend": "onnx", "validation": {"flip_rate": "0"}},
    ],
)
def test_a_serving_backend_without_measured_agreement_fails_closed(recorded):
    decision = decide(metrics(serving=recorded), GateSettings(max_backend_flip_rate=1.0))
    assert not decision.passed and decision.deciding_rule == "serving backend agrees with fp32"
    assert "no validation agreement with fp32" in decision.rules[-1].detail


@pytest.mark.parametrize("challenger, passed", [(0.88, False), (0.895, True), (0.90, True), (0.95, True)])
def test_champion_regression_rule(challenger, passed, tmp_path):
    (tmp_path / "champion.json").write_text(json.dumps({"accuracy": 0.905}))
    settings = GateSettings(min_accuracy=0.5, champion_metrics=str(tmp_path / "champion.json"), max_regression=0.01)
    decision = decide(metrics(challenger), settings)
    assert decision.passed is passed
    if not passed:
        assert decision.deciding_rule == "no regression vs champion"


def test_champion_scored_on_the_same_split_wins_over_a_stored_file(tmp_path):
    (tmp_path / "champion.json").write_text(json.dumps({"accuracy": 0.5}))
    settings = GateSettings(champion_metrics=str(tmp_path / "champion.json"))
    decision = decide(metrics(0.9, champion={"accuracy": 0.95, "behaviour": GOOD_BEHAVIOUR}), settings)
    assert not decision.passed and decision.champion["source"] == "scored on the same test split"


@pytest.mark.parametrize("policy, passed", [("fail", False), ("ignore", True)])
def test_missing_champion_is_reported_and_handled_by_the_parameter(policy, passed, tmp_path):
    settings = GateSettings(champion_metrics=str(tmp_path / "gone.json"), missing_champion=policy)
    decision = decide(metrics(), settings)
    assert decision.passed is passed
    rule = next(r for r in decision.rules if r.name == "champion metrics readable")
    assert "could not read champion metrics" in rule.detail and policy in rule.detail
    unscored = decide(metrics(champion_error="OSError: no such model"), GateSettings(missing_champion=policy))
    assert unscored.passed is passed


def test_report_shows_challenger_and_champion_side_by_side(tmp_path):
    (tmp_path / "metrics.json").write_text(
        json.dumps(metrics(0.9, champion={"accuracy": 0.85, "f1": 0.8, "behaviour": GOOD_BEHAVIOUR}))
    )
    gate(str(tmp_path), GateSettings(), str(tmp_path / "decision.md"))
    text = (tmp_path / "decision.md").read_text()
    assert "Challenger vs champion" in text and "| accuracy | 0.9000 | 0.8500 | +0.0500 |" in text
    assert "behaviour mft" in text


def test_a_rule_registered_in_rules_alone_is_applied_reported_and_can_block(tmp_path, monkeypatch):
    """Adding a gate rule is one function in textclf.gate.RULES (CONTRIBUTING.md): decide applies it after the
    others, the report shows its row, and a failing one decides; a rule that returns None is off."""
    import textclf.gate as gate_module
    from textclf.gate import Rule

    def calibration_rule(metrics, settings):
        error = metrics.get("expected_calibration_error")
        return Rule("calibration", gate_module.finite(error) and error <= 0.1, f"ECE {error!r} vs maximum 0.1")

    monkeypatch.setattr(gate_module, "RULES", [*gate_module.RULES, calibration_rule, lambda metrics, settings: None])
    passing = decide(metrics(expected_calibration_error=0.05), GateSettings())
    assert passing.passed and [rule.name for rule in passing.rules][-1] == "calibration"
    assert len(passing.rules) == 4  # accuracy, behaviour, serving, calibration: class recall (0) and the None rule off
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(expected_calibration_error=0.3)))
    blocked = gate(str(tmp_path), GateSettings(), str(tmp_path / "decision.md"))
    assert not blocked.passed and blocked.deciding_rule == "calibration"
    assert "| calibration | fail | ECE 0.3 vs maximum 0.1 |" in (tmp_path / "decision.md").read_text()
    assert decide(metrics(), GateSettings()).deciding_rule == "calibration"  # fails closed without the metric
