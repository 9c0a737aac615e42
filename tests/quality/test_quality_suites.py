"""The shipped sentiment suite file: deterministic, labelled, and each edit is the edit it claims to be."""

import hashlib
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from textclf.behaviour import DIR, INV, MFT, BehaviourError, built_in, sentiment_suites, swap_contractions

SENTIMENT = built_in("sentiment.yaml")
SLOTS = SENTIMENT.slots
SUITES = sentiment_suites()
SUITE_BY_NAME = {suite.name: suite for suite in SUITES}
APPENDED = {spec["name"]: spec["append"] for spec in SENTIMENT.suites if spec["type"] == DIR}


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_generator_is_deterministic_and_seeded(suite):
    first = suite.generate(seed=0, max_cases=10)
    assert first == suite.generate(seed=0, max_cases=10)
    assert first != suite.generate(seed=1, max_cases=10)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_generator_yields_labelled_cases(suite):
    cases = suite.generate(seed=0, max_cases=40)
    assert 20 <= len(cases) <= 40
    assert len(set(cases)) == len(cases)
    for case in cases:
        assert case.text.strip()
        assert suite.well_formed(case)
        if suite.kind == MFT:
            assert case.original == ""
        else:
            assert case.original.strip() and case.original != case.text


@pytest.mark.parametrize("suite", [s for s in SUITES if s.kind == MFT], ids=lambda s: s.name)
def test_mft_cases_are_balanced_between_labels(suite):
    counts = Counter(case.expected for case in suite.generate(seed=3, max_cases=41))
    assert set(counts) == {"positive", "negative"}
    assert abs(counts["positive"] - counts["negative"]) <= 1


def test_max_cases_must_be_positive():
    with pytest.raises(BehaviourError, match="max_cases"):
        SUITES[0].generate(max_cases=0)


def test_cases_do_not_depend_on_the_hash_seed():
    """Same seed, different processes and PYTHONHASHSEED: the same cases (no set-order leaks)."""
    script = (
        "import hashlib; from textclf.behaviour import sentiment_suites; "
        "print(hashlib.sha256(repr([s.generate(7, 40) for s in sentiment_suites()]).encode()).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    here = hashlib.sha256(repr([s.generate(7, 40) for s in SUITES]).encode()).hexdigest()
    assert digests == {here}


def test_negation_cases_are_negated_and_flip_the_adjective_polarity():
    for case in SUITE_BY_NAME["mft_negation"].generate(max_cases=200):
        words = set(re.findall(r"[a-z']+", case.text.lower()))
        assert words & {"not", "never", "isn't", "don't"}, case.text
        polar = (
            SLOTS["negatable_negative_adjective"]
            if case.expected == "positive"
            else (SLOTS["negatable_positive_adjective"] + SLOTS["negatable_positive_verb"])
        )
        assert words & set(polar), case.text


def test_intensifier_cases_carry_an_intensifier_and_the_adjective_polarity():
    for case in SUITE_BY_NAME["mft_intensifiers"].generate(max_cases=100):
        words = set(case.text.lower().rstrip(".").split())
        assert words & set(SLOTS["intensifier"]), case.text
        adjectives = SLOTS["positive_adjective"] if case.expected == "positive" else SLOTS["negative_adjective"]
        assert words & set(adjectives), case.text


def test_typo_swaps_two_neighbouring_letters():
    for case in SUITE_BY_NAME["inv_typos"].generate(max_cases=100):
        diff = [i for i, (a, b) in enumerate(zip(case.original, case.text)) if a != b]
        assert len(case.text) == len(case.original)
        assert len(diff) == 2 and diff[1] == diff[0] + 1, (case.original, case.text)
        i = diff[0]
        assert case.text[i : i + 2] == case.original[i + 1] + case.original[i]


@pytest.mark.parametrize(
    ("text", "swapped"),
    [
        ("It isn't good, and I can't say why.", "It is not good, and I cannot say why."),
        # The leftmost phrase wins: "it is not" becomes "it's not", as good a contraction.
        ("It is not good, and I cannot say why.", "It's not good, and I can't say why."),
        ("This is not good.", "This isn't good."),
        ("I'm sure it's fine.", "I am sure it is fine."),
        ("I am sure it is fine.", "I'm sure it's fine."),
        ("Isn't it? I'd say so.", "Is not it? I would say so."),
        ("No contraction here.", "No contraction here."),
    ],
)
def test_swap_contractions(text, swapped):
    assert swap_contractions(text) == swapped


def test_contraction_cases_go_both_ways():
    cases = SUITE_BY_NAME["inv_contractions"].generate(max_cases=100)
    assert all(swap_contractions(case.original) == case.text for case in cases)
    expanded = [case for case in cases if "n't" in case.original]
    contracted = [case for case in cases if "n't" in case.text]
    assert expanded and contracted


def test_name_and_place_cases_differ_only_in_names_and_places():
    swappable = set(SLOTS["name"]) | set(SLOTS["city"])
    for case in SUITE_BY_NAME["inv_names_places"].generate(max_cases=100):
        before, after = case.original.split(), case.text.split()
        changed = {re.sub(r"\W", "", w) for a, b in zip(before, after) if a != b for w in (a, b)}
        assert len(before) == len(after) and changed and changed <= swappable, case


def test_punctuation_and_case_cases_keep_the_words():
    def words(text):
        return re.findall(r"[a-z']+", text.lower())

    cases = SUITE_BY_NAME["inv_punctuation_case"].generate(max_cases=200)
    assert all(words(case.text) == words(case.original) for case in cases)
    assert any(case.text.isupper() for case in cases) and any(case.text.islower() for case in cases)
    assert any(case.text.endswith("!!!") for case in cases)


@pytest.mark.parametrize(
    ("name", "clauses", "direction"),
    [
        ("dir_add_positive", APPENDED["dir_add_positive"], "up"),
        ("dir_add_negative", APPENDED["dir_add_negative"], "down"),
    ],
)
def test_directional_cases_append_a_clause_of_the_right_polarity(name, clauses, direction):
    suite = SUITE_BY_NAME[name]
    assert suite.kind == DIR
    for case in suite.generate(max_cases=100):
        assert case.expected == direction
        assert case.text.startswith(case.original + " ")
        assert case.text[len(case.original) + 1 :] in clauses


def test_invariance_suites_draw_on_both_polarities():
    for suite in (s for s in SUITES if s.kind == INV):
        originals = {case.original for case in suite.generate(max_cases=40)}
        assert any("loved" in t or "wonderful" in t or "joy" in t for t in originals), suite.name
        assert any("waste" in t or "worst" in t or "dull" in t for t in originals), suite.name
