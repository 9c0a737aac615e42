"""The task-neutral suites: label-preserving edits of a model's own test texts, drawn as a seeded sample
that depends on the texts and the seed only, and each edit is the edit it claims to be."""

import random
import re

import pytest

from textclf.behaviour import PERTURBATIONS, neutral_suites
from textclf.behaviour.lexicon import FIRST_NAMES, PLACES

TEXTS = [
    f"How far is Paris from Berlin in {100 + i} km? Ask Maria at maria{i}@mail.com or https://ex.org/{i}."
    for i in range(60)
] + [f"what is a tiger number {i}" for i in range(60)]


def test_the_sample_is_seeded_and_independent_of_the_texts_order():
    suites, _ = neutral_suites(TEXTS, seed=3)
    shuffled = TEXTS[:]
    random.Random(1).shuffle(shuffled)
    again, _ = neutral_suites(shuffled, seed=3)
    other, _ = neutral_suites(TEXTS, seed=4)
    cases = lambda found: {s.name: s.generate(0, 40) for s in found}  # noqa: E731
    assert cases(suites) == cases(again)
    assert cases(suites) != cases(other)
    assert {s.name for s in suites} == {
        "neutral_typos",
        "neutral_case",
        "neutral_punctuation",
        "neutral_whitespace",
        "neutral_names_places",
        "neutral_numbers",
        "neutral_urls_emails",
    }


def test_each_suite_holds_at_most_its_cases_and_skips_when_too_few_texts_fit():
    suites, skipped = neutral_suites(["plain words only here"] * 3 + [f"text {i}" for i in range(5)], seed=0, cases=4)
    assert all(len(s.build(random.Random(0))) <= 4 for s in suites)
    assert {s["name"] for s in skipped} >= {"neutral_names_places", "neutral_urls_emails"}
    assert all("at least 10 are needed" in s["reason"] for s in skipped)


def edits(name):
    suites, _ = neutral_suites(TEXTS, seed=0)
    return next(s for s in suites if s.name == name).build(random.Random(0))


def test_names_and_places_are_swapped_for_others_of_their_kind():
    for case in edits("neutral_names_places"):
        before, after = case.original.split(), case.text.split()
        changed = {re.sub(r"[^\w]", "", w) for a, b in zip(before, after) if a != b for w in (a, b)}
        assert len(before) == len(after) and len(changed) == 2 and changed <= set(FIRST_NAMES) | set(PLACES)


def test_numbers_keep_their_length_and_everything_else():
    for case in edits("neutral_numbers"):
        assert re.sub(r"\d", "#", case.text) == re.sub(r"\d", "#", case.original) != case.text


def test_urls_and_emails_are_replaced_by_others():
    for case in edits("neutral_urls_emails"):
        assert case.text != case.original
        assert case.text.replace(" ", "") != case.original.replace(" ", "")
        assert "example" in case.text


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("strip_punctuation", "Is 3.5 km far, www.a.com?", "Is 3.5 km far www.a.com"),
        ("strip_punctuation", "no marks at all", "no marks at all."),
        ("lower_case", "WIN a Prize", "win a prize"),
        ("contractions", "It isn't here", "It is not here"),
        ("typo", "a b c", None),
        ("numbers", "no digits", None),
        ("names_places", "nobody known", None),
    ],
)
def test_perturbations_apply_or_say_they_do_not(name, text, expected):
    assert PERTURBATIONS[name].apply(text, random.Random(0)) == expected


def test_whitespace_edits_change_only_whitespace():
    for seed in range(20):
        edited = PERTURBATIONS["whitespace"].apply("one two three", random.Random(seed))
        assert edited != "one two three" and edited.split() == ["one", "two", "three"]


def test_duplicates_count_once_and_memory_does_not_follow_the_split():
    suites, _ = neutral_suites(TEXTS * 3, seed=0, cases=12)
    for suite in suites:
        originals = [case.original for case in suite.build(random.Random(0))]
        assert len(originals) == len(set(originals)) <= 12
    assert {s.name: s.build(random.Random(0)) for s in suites} == {
        s.name: s.build(random.Random(0)) for s in neutral_suites(TEXTS, seed=0, cases=12)[0]
    }
