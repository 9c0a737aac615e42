"""run_suites and BehaviourReport: the suites fail the models they should and pass the others."""

import json

import numpy as np
import pytest

from tests.quality.stub_models import constant_model, lexicon_model
from textclf.behaviour import DIR, INV, MFT, BehaviourError, BehaviourReport, Case, Suite, built_in, run_suites

LABELS = ["negative", "positive"]
SENTIMENT = built_in("sentiment.yaml")
SUITES = SENTIMENT.bind(LABELS)
ROLES = {"positive": 1, "negative": 0}
MFT_SUITES = [s.name for s in SUITES if s.kind == MFT]
INV_SUITES = [s.name for s in SUITES if s.kind == INV]


@pytest.mark.parametrize("positive_probability", [0.01, 0.99])
def test_a_one_class_model_fails_every_mft_suite(positive_probability):
    report = run_suites(constant_model(positive_probability), LABELS)
    rates = report.pass_rates()
    assert all(rates[name] == 0.5 for name in MFT_SUITES), rates
    assert rates["mft"] == 0.5
    assert report.check({"mft": 0.8}) == ["behavioural pass rate 'mft' 0.500 < minimum 0.800"]


def test_a_model_that_ignores_the_text_passes_invariance_but_fails_directional():
    rates = run_suites(constant_model(0.7), LABELS).pass_rates()
    assert rates["inv"] == 1.0 and all(rates[name] == 1.0 for name in INV_SUITES)
    assert rates["dir_add_positive"] == 0.0 and rates["dir_add_negative"] == 0.0


def test_a_saturated_model_that_ignores_the_text_still_fails_half_the_directional_cases():
    """Already at 0.99 'counts as up' for appended praise, never as 'down' for appended criticism."""
    rates = run_suites(constant_model(0.99), LABELS).pass_rates()
    assert rates["dir_add_positive"] == 1.0 and rates["dir_add_negative"] == 0.0
    assert rates["dir"] == 0.5


def test_negation_aware_keywords_pass_more_mft_than_plain_keywords():
    naive = run_suites(lexicon_model(handle_negation=False), LABELS).pass_rates()
    aware = run_suites(lexicon_model(handle_negation=True), LABELS).pass_rates()
    assert naive["mft_negation"] <= 0.1
    assert aware["mft_negation"] >= 0.9
    assert aware["mft"] > naive["mft"] + 0.25
    # Both read plain and intensified phrases right: only negation separates them.
    for report in (naive, aware):
        assert report["mft_short_phrases"] == report["mft_intensifiers"] == 1.0


def test_a_keyword_model_can_pass_the_directional_and_invariance_suites():
    report = run_suites(lexicon_model(handle_negation=True), LABELS)
    rates = report.pass_rates()
    assert rates["dir"] == 1.0
    assert rates["inv_names_places"] == rates["inv_contractions"] == 1.0
    # A typo can hide a keyword, so not every typo case passes: the suite can fail.
    assert 0.5 < rates["inv_typos"] < 1.0
    assert report.check({"mft": 0.9, "dir": 0.9, "inv_names_places": 1.0}) == []


def test_positive_label_is_found_whatever_its_id():
    in_order = run_suites(lexicon_model(True), ["negative", "positive"]).pass_rates()
    swapped = run_suites(lexicon_model(True, positive_first=True), ["POS", "Neg"]).pass_rates()
    assert swapped == in_order


@pytest.mark.parametrize(
    ("labels", "ids"),
    [
        (["negative", "positive"], (1, 0)),
        (["Positive", " NEGATIVE "], (0, 1)),
        (["neg", "pos"], (1, 0)),
        (["bad", "good"], (1, 0)),
        (["0", "1"], (1, 0)),
        (["negative", "neutral", "positive"], (2, 0)),
    ],
)
def test_the_sentiment_file_binds_its_roles_to_sentiment_labels(labels, ids):
    roles, problem = SENTIMENT.roles_for(labels)
    assert (roles["positive"], roles["negative"]) == ids and problem == ""


@pytest.mark.parametrize(
    "labels",
    [["ham", "spam"], ["0", "1", "2"], ["LABEL_0", "LABEL_1"], ["pos", "positive", "negative"]],
)
def test_labels_without_one_positive_and_one_negative_do_not_fit_the_sentiment_file(labels):
    roles, problem = SENTIMENT.roles_for(labels)
    assert roles is None and "positive" in problem
    with pytest.raises(BehaviourError, match="do not fit sentiment"):
        SENTIMENT.bind(labels)


def test_non_sentiment_labels_get_no_file_suites_and_an_empty_report_fails_closed():
    def must_not_be_called(texts):
        raise AssertionError("predict_proba called without suites")

    report = run_suites(must_not_be_called, ["ham", "spam"])
    assert report.pass_rates() == {} and report.suites == []
    assert report.check({"mft": 0.5}) == ["no behavioural suite ran"]
    assert "sentiment suites not used" in report.to_markdown() and "No suite ran" in report.to_markdown()
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["pass_rates"] == {}
    assert BehaviourReport.from_dict(as_json) == report


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda texts: np.full((len(texts), 3), 1 / 3), "shape"),
        (lambda texts: np.full((len(texts) + 1, 2), 0.5), "shape"),
        (lambda texts: np.full((len(texts), 2), np.nan), "NaN"),
        (lambda texts: np.tile([2.0, -1.0], (len(texts), 1)), "probabilities"),
        (lambda texts: np.tile([0.9, 0.9], (len(texts), 1)), "probabilities"),
    ],
)
def test_predict_proba_output_that_is_not_probabilities_is_an_error(output, message):
    with pytest.raises(BehaviourError, match=message):
        run_suites(output, LABELS)


@pytest.mark.parametrize(
    "settings", [{"batch_size": 0}, {"dir_tolerance": 0.5}, {"max_failures": -1}, {"max_cases_per_suite": 0}]
)
def test_bad_settings_are_an_error(settings):
    with pytest.raises(BehaviourError):
        run_suites(constant_model(0.5), LABELS, **settings)


def test_texts_are_scored_once_in_batches_of_at_most_batch_size():
    calls = []

    def recording(texts):
        calls.append(list(texts))
        return constant_model(0.5)(texts)

    report = run_suites(recording, LABELS, max_cases_per_suite=10, batch_size=16)
    scored = [text for batch in calls for text in batch]
    assert all(1 <= len(batch) <= 16 for batch in calls)
    assert len(scored) == len(set(scored))
    assert sum(s.cases for s in report.suites) == 90
    assert len(scored) > 90  # INV and DIR originals are scored too


def test_default_size_is_a_few_hundred_cases():
    report = run_suites(constant_model(0.5), LABELS)
    assert 300 <= sum(suite.cases for suite in report.suites) <= 400
    assert {suite.name for suite in report.suites} == {suite.name for suite in SUITES}


def _scripted(positive_by_text):
    """A model that gives each text the positive probability in ``positive_by_text``."""
    return lambda texts: np.array([[1 - positive_by_text[t], positive_by_text[t]] for t in texts])


@pytest.mark.parametrize(
    ("before", "after", "tolerance", "passes"),
    [
        (0.50, 0.60, 0.05, True),
        (0.50, 0.50, 0.05, False),  # no movement away from the ends is a failure
        (0.50, 0.45, 0.05, False),
        (0.97, 0.96, 0.05, True),  # already at the top: may slip by the tolerance
        (0.97, 0.90, 0.05, False),
        (0.97, 0.96, 0.01, False),  # 0.97 is not at the top for a 0.01 tolerance
    ],
)
def test_directional_tolerance(before, after, tolerance, passes):
    suite = Suite("dir_scripted", DIR, "scripted", lambda rng: [Case("b", "up", "a", "positive")], "file", ROLES)
    model = _scripted({"a": before, "b": after})
    report = run_suites(model, LABELS, suites=[suite], dir_tolerance=tolerance)
    assert report.pass_rates()["dir_scripted"] == (1.0 if passes else 0.0)


def test_report_round_trips_through_json_and_renders_failures():
    cases = [Case(f"good | case {i}", "positive") for i in range(8)] + [Case("bad one", "negative")]
    suite = Suite("mft_scripted", MFT, "scripted", lambda rng: cases, "file", ROLES)
    inv = Suite("inv_scripted", INV, "scripted", lambda rng: [Case("edited", "same", "original")], "task-neutral")
    model = _scripted({case.text: 0.2 for case in cases} | {"original": 0.3, "edited": 0.6})
    report = run_suites(model, LABELS, suites=[suite, inv], max_failures=3)

    result = report.suites[0]
    assert (result.cases, result.passed, len(result.failures)) == (9, 1, 3)
    failure = result.failures[0]
    assert (failure.expected, failure.got) == ("positive", "negative")
    assert failure.scores == {"negative": 0.8, "positive": 0.2}

    raw = report.to_dict()
    assert raw["suites"][0]["type"] == "MFT" and raw["suites"][0]["pass_rate"] == pytest.approx(1 / 9)
    assert raw["pass_rates"] == report.pass_rates()
    assert BehaviourReport.from_dict(json.loads(json.dumps(raw))) == report

    markdown = report.to_markdown()
    assert "| mft_scripted | file | MFT | 9 | 1 | 11.1% |" in markdown
    assert "| **all MFT** | | MFT | 9 | 1 | **11.1%** |" in markdown
    assert "`file` suites: positive = `positive`, negative = `negative`" in markdown
    assert "### Failing: mft_scripted (8 of 9, first 3 shown)" in markdown
    assert "good \\| case" in markdown  # a pipe in a text does not break the table
    assert "negative 0.800, positive 0.200" in markdown
    assert "| original | edited | negative (as the original) | positive |" in markdown
    assert "(original: negative 0.700, positive 0.300)" in markdown


def test_check_rejects_impossible_minimums_and_reports_missing_keys():
    report = run_suites(constant_model(0.7), LABELS, max_cases_per_suite=5)
    with pytest.raises(BehaviourError, match="must be in"):
        report.check({"mft": 80})
    assert report.check({"no_such_suite": 0.1}) == ["behavioural pass rate 'no_such_suite' is missing"]
    inv_only = run_suites(
        constant_model(0.7), LABELS, suites=[s for s in SUITES if s.kind == INV], max_cases_per_suite=5
    )
    assert inv_only.check({"mft": 0.9, "inv": 0.9, "dir": 0.9}) == [], "types no suite fits are not checked"
    assert inv_only.kinds_run() == {"inv"}


def test_runs_on_a_real_hugging_face_model(tiny_model_dir):
    """The tiny random BERT through the inference engine: the path evaluate takes with the real model."""
    from textclf.inference import InferenceSettings, load_engine

    engine = load_engine(tiny_model_dir, InferenceSettings(backend="torch", max_length=128))
    report = run_suites(engine.probabilities, engine.labels, max_cases_per_suite=10, batch_size=32)
    assert report.roles == {"sentiment": {"positive": "positive", "negative": "negative"}}
    rates = report.pass_rates()
    assert set(rates) == {s.name for s in SUITES} | {"mft", "inv", "dir"}
    assert all(0.0 <= rate <= 1.0 for rate in rates.values())
    json.dumps(report.to_dict())
