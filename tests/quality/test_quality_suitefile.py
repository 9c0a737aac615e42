"""Suites as data: a user's suite file (YAML or JSON, path or gs://) for a non-sentiment task, its
templates, and the named errors a broken file gives."""

import json
import random

import numpy as np
import pytest
import yaml

from textclf.behaviour import BehaviourError, built_in, load, plan_suites, run_suites
from textclf.behaviour.plan import file_suites

SPAM_SUITES = {
    "format": "textclf-behaviour/1",
    "name": "sms-spam",
    "labels": {"spam": ["spam"], "ham": ["ham"]},
    "slots": {"prize": ["a free iPhone", "cash", "a holiday"], "friend": ["Tom", "Ana"]},
    "suites": [
        {
            "name": "mft_offers",
            "type": "MFT",
            "description": "prize offers are spam",
            "cases": [
                {"label": "spam", "templates": ["You have won {prize}! Text WIN to 80086 now."]},
                {
                    "label": "ham",
                    "texts": ["See you at lunch?", "{friend} says hi"],
                    "templates": ["Tell {friend} I'm late."],
                },
            ],
        },
        {
            "name": "inv_case",
            "type": "INV",
            "texts": {"templates": ["Call {friend} back, {Friend} is waiting."]},
            "perturbations": ["upper_case", "typo"],
        },
        {
            "name": "inv_friend",
            "type": "INV",
            "texts": {"templates": ["Dinner with {friend} tonight?"]},
            "swap_slots": ["friend"],
        },
        {
            "name": "dir_urgency",
            "type": "DIR",
            "label": "spam",
            "direction": "up",
            "texts": {"texts": ["Your account has a message."]},
            "append": ["Claim your {prize} in 24 hours!"],
        },
    ],
}


def keyword_spam_model(texts):
    """spam probability 0.9 for texts with WIN/won/Claim, else 0.1."""
    spam = np.array([0.9 if any(w in t for w in ("WIN", "won", "Claim", "CLAIM")) else 0.1 for t in texts])
    return np.stack([1 - spam, spam], axis=1)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_users_suite_file_tests_a_spam_model_with_its_own_roles(tmp_path, suffix):
    path = tmp_path / f"spam{suffix}"
    path.write_text(json.dumps(SPAM_SUITES) if suffix == ".json" else yaml.safe_dump(SPAM_SUITES))
    suites, notes = file_suites(["ham", "spam"], str(path))
    assert [s.name for s in suites] == ["mft_offers", "inv_case", "inv_friend", "dir_urgency"] and notes == []
    cases = {s.name: s.generate(0, 40) for s in suites}
    assert {c.text for c in cases["mft_offers"] if c.expected == "spam"} == {
        f"You have won {p}! Text WIN to 80086 now." for p in ("a free iPhone", "cash", "a holiday")
    }
    assert "Call Ana back, Ana is waiting." in {c.original for c in cases["inv_case"]}, (
        "{Friend} is friend, capitalised"
    )
    assert all(c.original.split()[2] != c.text.split()[2] for c in cases["inv_friend"])
    report = run_suites(keyword_spam_model, ["ham", "spam"], suites=suites)
    rates = report.pass_rates()
    assert rates["mft_offers"] == 1.0 and rates["inv"] == 1.0 and rates["dir"] == 1.0
    assert report.roles == {"sms-spam": {"spam": "spam", "ham": "ham"}}


def test_a_suite_file_on_gs_is_read_through_the_storage_module(monkeypatch):
    from textclf.platform import storage

    monkeypatch.setattr(
        storage, "read_text", lambda uri: yaml.safe_dump(SPAM_SUITES) if uri == "gs://b/suites.yaml" else 1 / 0
    )
    assert load("gs://b/suites.yaml").name == "sms-spam"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: f.pop("format"), "not a suite file"),
        (lambda f: f["suites"][0].update(type="XYZ"), r"suite 1 \(mft_offers\): needs a name and a type"),
        (lambda f: f["suites"][0]["cases"][0].update(label="scam"), "label 'scam' is not one of the file's roles"),
        (lambda f: f["suites"][1].update(perturbations=["shout"]), r"unknown: \['shout'\]"),
        (
            lambda f: f["suites"][1]["texts"].update(templates=["{nobody} is here"]),
            r"uses slot \{nobody\}, which has no fillers",
        ),
        (lambda f: f["suites"][3].update(direction="sideways"), "a DIR suite has a label, a direction"),
        (lambda f: f["suites"].append(dict(f["suites"][0])), "the name is used twice"),
    ],
)
def test_a_broken_suite_file_is_a_named_error(tmp_path, change, message):
    broken = json.loads(json.dumps(SPAM_SUITES))
    change(broken)
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(BehaviourError, match=message):
        load(str(tmp_path / "broken.yaml"))


def test_a_named_file_whose_roles_do_not_fit_the_labels_is_an_error_not_a_silent_skip(tmp_path):
    (tmp_path / "spam.yaml").write_text(yaml.safe_dump(SPAM_SUITES))
    with pytest.raises(BehaviourError, match=r"spam.yaml: labels \['LOC', 'HUM'\] do not fit sms-spam"):
        file_suites(["LOC", "HUM"], str(tmp_path / "spam.yaml"))
    with pytest.raises(BehaviourError, match="cannot read the suite file"):
        file_suites(["ham", "spam"], str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("suites: [unclosed")
    with pytest.raises(BehaviourError, match="is not valid YAML"):
        file_suites(["ham", "spam"], str(tmp_path / "bad.yaml"))


def test_auto_takes_the_sentiment_file_for_sentiment_labels_only():
    sentiment, _ = file_suites(["negative", "positive"], "auto")
    assert {s.source for s in sentiment} == {"sentiment"} and len(sentiment) == 9
    intents, notes = file_suites(["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"], "auto")
    assert intents == [] and "built-in sentiment suites not used" in notes[0]
    assert file_suites(["negative", "positive"], "none") == ([], ["no suite file (behaviour_suites=none)"])


def test_film_reviews_live_only_in_the_sentiment_file():
    """The shipped sentiment suites are one data file; the task-neutral suites carry no text of their own."""
    from pathlib import Path

    import textclf.behaviour.neutral as neutral
    import textclf.behaviour.perturb as perturb

    for module in (neutral, perturb):
        source = Path(module.__file__).read_text().lower()
        assert "film" not in source and "movie" not in source
    assert "film" in " ".join(built_in("sentiment.yaml").text_sets["positive_reviews"])


def test_the_plan_puts_the_file_suites_first_and_the_task_neutral_ones_after():
    texts = [f"What is the capital of France number {i}?" for i in range(30)]
    plan = plan_suites(["negative", "positive"], "auto", texts, seed=1)
    sources = [s.source for s in plan.suites]
    assert sources[:9] == ["sentiment"] * 9 and set(sources[9:]) == {"task-neutral"}
    assert {s["name"] for s in plan.skipped} == {"neutral_urls_emails"}, "no test text has a URL"
    rng = random.Random(0)
    assert all(case.original in texts for s in plan.suites[9:] for case in s.build(rng))


def test_the_documented_example_file_is_a_valid_suite_file():
    """docs/behaviour.md's example parses, binds to ham/spam and runs."""
    import re
    from pathlib import Path

    from textclf.behaviour.suitefile import parse

    doc = (Path(__file__).resolve().parents[2] / "docs" / "behaviour.md").read_text()
    example = parse(yaml.safe_load(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1)), "docs/behaviour.md")
    report = run_suites(keyword_spam_model, ["ham", "spam"], suites=example.bind(["ham", "spam"]))
    assert {s.name for s in report.suites} == {"mft_offers", "inv_chat_edits", "inv_other_friend", "dir_urgency"}
