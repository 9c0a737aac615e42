"""Behavioural test cases: the three kinds, the suites and the generators that draw their cases.

Every suite draws its cases from our own templates (``textclf.behaviour.data``) with a seeded RNG,
so the same seed gives the same cases.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from textclf.behaviour import data


MFT, INV, DIR = "MFT", "INV", "DIR"
POSITIVE, NEGATIVE, SAME, UP, DOWN = "positive", "negative", "same", "up", "down"
EXPECTATIONS = {MFT: (POSITIVE, NEGATIVE), INV: (SAME,), DIR: (UP, DOWN)}

DEFAULT_MAX_CASES_PER_SUITE = 40
DEFAULT_BATCH_SIZE = 64
DEFAULT_DIR_TOLERANCE = 0.05
DEFAULT_MAX_FAILURES = 5

POSITIVE_LABEL_NAMES = frozenset({"positive", "pos", "good"})
NEGATIVE_LABEL_NAMES = frozenset({"negative", "neg", "bad"})


class BehaviourError(ValueError):
    """Bad input to the behavioural tests: label names, settings or ``predict_proba`` output."""


class NotSentimentLabels(Exception):
    """The label set has no single positive and single negative class; the message says why."""


@dataclass(frozen=True)
class Case:
    """One labelled test case.

    Attributes:
        text: What the model is asked about.
        expected: MFT: ``positive`` or ``negative``; INV: ``same`` (the label predicted for
            ``original``); DIR: ``up`` or ``down`` (the positive score against ``original``'s).
        original: INV and DIR: the unedited text; empty for MFT.
    """

    text: str
    expected: str
    original: str = ""


@dataclass(frozen=True)
class Suite:
    """A named test suite.

    Attributes:
        name: Key in reports and in ``pass_rates()``.
        kind: ``MFT``, ``INV`` or ``DIR``.
        description: One line for the report.
        build: Returns the suite's whole pool of candidate cases, drawing any random choices
            from the RNG it is given.
    """

    name: str
    kind: str
    description: str
    build: Callable[[random.Random], list[Case]]

    def generate(self, seed: int = 0, max_cases: int = DEFAULT_MAX_CASES_PER_SUITE) -> list[Case]:
        """Return up to ``max_cases`` cases: the same for the same seed, balanced by expectation.

        Balancing matters for MFT: a model that always answers one class scores about 50%,
        whatever the seed or size.
        """
        if max_cases < 1:
            raise BehaviourError(f"max_cases must be at least 1, got {max_cases}")
        rng = random.Random(f"{self.name}:{seed}")
        pool = list(dict.fromkeys(self.build(rng)))
        allowed = EXPECTATIONS[self.kind]
        bad = [case for case in pool if case.expected not in allowed or not case.text.strip()]
        if not pool or bad:
            raise RuntimeError(f"suite {self.name} built {len(pool)} cases, {len(bad)} malformed")
        groups: dict[str, list[Case]] = {}
        for case in pool:
            groups.setdefault(case.expected, []).append(case)
        for group in groups.values():
            rng.shuffle(group)
        interleaved = [c for row in itertools.zip_longest(*groups.values()) for c in row if c is not None]
        return interleaved[:max_cases]


# ---------------------------------------------------------------------------- generators


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _phrases(rng: random.Random, label: str, templates, adjectives, verbs) -> list[Case]:
    """Every template x noun x adjective, with a verb and an intensifier drawn at random."""
    cases = []
    for template, noun, adj in itertools.product(templates, data.NOUNS, adjectives):
        intensifier = rng.choice(data.INTENSIFIERS)
        text = template.format(
            noun=noun,
            adj=adj,
            Adj=adj.capitalize(),
            a_adj=f"{_article(adj)} {adj}",
            verb=rng.choice(verbs),
            intensifier=intensifier,
            a_intensifier=f"{_article(intensifier)} {intensifier}",
        )
        cases.append(Case(text, label))
    return cases


def _short_phrases(rng: random.Random) -> list[Case]:
    templates = data.SHORT_PHRASE_TEMPLATES
    return _phrases(rng, POSITIVE, templates, data.POSITIVE_ADJECTIVES, data.POSITIVE_VERBS) + (
        _phrases(rng, NEGATIVE, templates, data.NEGATIVE_ADJECTIVES, data.NEGATIVE_VERBS)
    )


def _negation(rng: random.Random) -> list[Case]:
    verbs = data.NEGATABLE_POSITIVE_VERBS
    return _phrases(
        rng, NEGATIVE, data.NEGATED_POSITIVE_TEMPLATES, data.NEGATABLE_POSITIVE_ADJECTIVES, verbs
    ) + _phrases(
        rng, POSITIVE, data.NEGATED_NEGATIVE_TEMPLATES, data.NEGATABLE_NEGATIVE_ADJECTIVES, verbs
    )


def _intensifiers(rng: random.Random) -> list[Case]:
    templates = data.INTENSIFIER_TEMPLATES
    return _phrases(rng, POSITIVE, templates, data.POSITIVE_ADJECTIVES, ("",)) + _phrases(
        rng, NEGATIVE, templates, data.NEGATIVE_ADJECTIVES, ("",)
    )


def _fill(template: str, rng: random.Random) -> str:
    return template.format(name=rng.choice(data.NAMES), city=rng.choice(data.CITIES))


def _reviews(rng: random.Random, templates=None, copies: int = 3) -> list[str]:
    """Reviews with names and places filled in; ``copies`` fillings of those that have any."""
    templates = templates or data.POSITIVE_REVIEWS + data.NEGATIVE_REVIEWS
    filled = [_fill(t, rng) for t in templates for _ in range(copies if "{" in t else 1)]
    return list(dict.fromkeys(filled))


def _add_typo(text: str, rng: random.Random) -> str:
    """Swap two neighbouring, different letters inside a word of 4+ letters (not the first)."""
    spots = [
        i
        for word in re.finditer(r"[A-Za-z]{4,}", text)
        for i in range(word.start() + 1, word.end() - 1)
        if text[i] != text[i + 1]
    ]
    i = rng.choice(spots)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def _typos(rng: random.Random) -> list[Case]:
    return [Case(_add_typo(base, rng), SAME, base) for base in _reviews(rng) for _ in range(3)]


def _word_pattern(words) -> re.Pattern:
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


_CONTRACTED = {c.lower(): e for c, e in data.CONTRACTIONS}
_EXPANDED = {e.lower(): c for c, e in data.CONTRACTIONS}
_CONTRACTED_RE = _word_pattern(_CONTRACTED)
_EXPANDED_RE = _word_pattern(_EXPANDED)


def swap_contractions(text: str) -> str:
    """Expand every contraction in ``text``; if it has none, contract every expandable phrase."""
    pattern, table = (
        (_CONTRACTED_RE, _CONTRACTED) if _CONTRACTED_RE.search(text) else (_EXPANDED_RE, _EXPANDED)
    )

    def replace(match: re.Match) -> str:
        new = table[match.group(0).lower()]
        return new[0].upper() + new[1:] if match.group(0)[0].isupper() else new

    return pattern.sub(replace, text)


def _contractions(rng: random.Random) -> list[Case]:
    pairs = ((swap_contractions(base), base) for base in _reviews(rng))
    return [Case(edited, SAME, base) for edited, base in pairs if edited != base]


def _names_places(rng: random.Random) -> list[Case]:
    cases = []
    for template in data.POSITIVE_REVIEWS + data.NEGATIVE_REVIEWS:
        if "{" not in template:
            continue
        for _ in range(4):
            (name, other_name), (city, other_city) = (
                rng.sample(data.NAMES, 2),
                rng.sample(data.CITIES, 2),
            )
            original = template.format(name=name, city=city)
            cases.append(Case(template.format(name=other_name, city=other_city), SAME, original))
    return cases


_PUNCTUATION_AND_CASE = (
    str.lower,
    str.upper,
    lambda text: re.sub(r"[.,;:!?]", "", text),
    lambda text: text.rstrip(".!?") + "!!!",
)


def _punctuation_case(rng: random.Random) -> list[Case]:
    return [
        Case(edit(base), SAME, base)
        for base in _reviews(rng)
        for edit in _PUNCTUATION_AND_CASE
        if edit(base) != base
    ]


def _add_clause(rng: random.Random, bases, clauses, expected: str) -> list[Case]:
    return [
        Case(f"{base} {clause}", expected, base)
        for base in _reviews(rng, bases, copies=1)
        for clause in clauses
    ]


def _add_positive(rng: random.Random) -> list[Case]:
    bases = data.NEUTRAL_SENTENCES + data.NEGATIVE_REVIEWS
    return _add_clause(rng, bases, data.POSITIVE_CLAUSES, UP)


def _add_negative(rng: random.Random) -> list[Case]:
    bases = data.NEUTRAL_SENTENCES + data.POSITIVE_REVIEWS
    return _add_clause(rng, bases, data.NEGATIVE_CLAUSES, DOWN)


SUITES: tuple[Suite, ...] = (
    Suite("mft_short_phrases", MFT, "Short, clear phrases: 'The film was great.'", _short_phrases),
    Suite("mft_negation", MFT, "'not good' is negative, 'not bad at all' is positive", _negation),
    Suite("mft_intensifiers", MFT, "Intensified adjectives keep their polarity", _intensifiers),
    Suite("inv_typos", INV, "One swapped pair of letters keeps the label", _typos),
    Suite("inv_contractions", INV, "'isn't' <-> 'is not' keeps the label", _contractions),
    Suite("inv_names_places", INV, "Other names and places keep the label", _names_places),
    Suite("inv_punctuation_case", INV, "Case and punctuation changes keep the label", _punctuation_case),
    Suite("dir_add_positive", DIR, "A positive sentence appended raises the positive score", _add_positive),
    Suite("dir_add_negative", DIR, "A negative sentence appended lowers the positive score", _add_negative),
)
