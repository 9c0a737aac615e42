"""Behavioural test suites for sentiment classifiers: the CheckList idea, written here.

Three kinds of test, after Ribeiro et al. (2020), "Beyond Accuracy: Behavioral Testing of NLP
Models with CheckList":

- **MFT** (minimum functionality): short, clear cases with a known label (negation,
  intensifiers, plain phrases). Pass: the predicted label is the expected one.
- **INV** (invariance): a label-preserving edit (typo, contraction, other names and places,
  punctuation and case). Pass: the predicted label is the one predicted for the original.
- **DIR** (directional): a clearly positive (negative) sentence appended. Pass: the positive
  score rises (falls); an original already within ``dir_tolerance`` of that end may instead
  stay put, moving the wrong way by at most ``dir_tolerance``.

Every suite draws its cases from our own templates (``behaviour_data``) with a seeded RNG, so
the same seed gives the same cases. ``run_suites`` scores them through any ``predict_proba``
and returns a ``BehaviourReport`` for ``metrics.json``, the evaluation report and the gate.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from textclf import behaviour_data as data

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------- labels


def sentiment_label_ids(label_names: Sequence[str]) -> tuple[int, int]:
    """Return ``(positive_id, negative_id)`` for a sentiment label set.

    Names match case-insensitively: positive/pos/good and negative/neg/bad, and ``1``/``0``
    when the labels are exactly ``0`` and ``1``. Other labels (e.g. ``neutral``) may be present.

    Raises:
        BehaviourError: Fewer than two labels, or empty or duplicate names.
        NotSentimentLabels: No single positive and single negative label (e.g. ham/spam).
    """
    names = [str(name).strip().lower() for name in label_names]
    if len(names) < 2 or not all(names) or len(set(names)) != len(names):
        raise BehaviourError(f"need two or more distinct, non-empty label names, got {label_names!r}")
    positive_words, negative_words = POSITIVE_LABEL_NAMES, NEGATIVE_LABEL_NAMES
    if set(names) == {"0", "1"}:
        positive_words, negative_words = positive_words | {"1"}, negative_words | {"0"}
    positive = [i for i, name in enumerate(names) if name in positive_words]
    negative = [i for i, name in enumerate(names) if name in negative_words]
    if len(positive) == 1 and len(negative) == 1:
        return positive[0], negative[0]
    raise NotSentimentLabels(
        f"label names {list(label_names)} do not name exactly one positive "
        f"({'/'.join(sorted(positive_words))}) and one negative "
        f"({'/'.join(sorted(negative_words))}) class"
    )


# ---------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Failure:
    """A failing case as shown in the report; scores are probabilities by label name."""

    text: str
    expected: str
    got: str
    scores: dict[str, float]
    original: str = ""
    original_scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteResult:
    """One suite's outcome; ``failures`` holds at most the first ``max_failures``."""

    name: str
    kind: str
    description: str
    cases: int
    passed: int
    failures: list[Failure]

    @property
    def pass_rate(self) -> float:
        return self.passed / self.cases


@dataclass(frozen=True)
class BehaviourReport:
    """The outcome of ``run_suites``.

    Attributes:
        applicable: False when the labels are not sentiment labels; then ``suites`` is empty,
            ``pass_rates()`` is empty and ``not_applicable_reason`` says why.
        not_applicable_reason: Empty when applicable.
        label_names: The model's labels, in id order.
        positive_label: The label treated as positive (None when not applicable).
        negative_label: The label treated as negative (None when not applicable).
        settings: seed, max_cases_per_suite, dir_tolerance.
        suites: One result per suite, in run order.
    """

    applicable: bool
    not_applicable_reason: str
    label_names: list[str]
    positive_label: str | None
    negative_label: str | None
    settings: dict
    suites: list[SuiteResult] = field(default_factory=list)

    def pass_rates(self) -> dict[str, float]:
        """Pass rate per suite name, plus ``mft``/``inv``/``dir``: the mean over that type's suites."""
        rates = {suite.name: suite.pass_rate for suite in self.suites}
        for kind in EXPECTATIONS:
            of_kind = [suite.pass_rate for suite in self.suites if suite.kind == kind]
            if of_kind:
                rates[kind.lower()] = sum(of_kind) / len(of_kind)
        return rates

    def check(self, min_pass_rates: Mapping[str, float], allow_not_applicable: bool = False) -> list[str]:
        """Reasons this report misses the minimums; an empty list means it meets them all.

        Fails closed: a not-applicable report fails unless ``allow_not_applicable``, and a
        minimum for a key that ``pass_rates()`` lacks fails.

        Args:
            min_pass_rates: Minimum pass rate (0..1) by ``pass_rates()`` key, e.g.
                ``{"mft": 0.8, "inv": 0.9, "dir": 0.8}``.
            allow_not_applicable: Pass a report whose labels are not sentiment labels.
        """
        for key, minimum in min_pass_rates.items():
            if not 0.0 <= minimum <= 1.0:
                raise BehaviourError(f"minimum pass rate for {key!r} must be in [0, 1], got {minimum}")
        if not self.applicable:
            if allow_not_applicable:
                return []
            return [f"behavioural tests not applicable ({self.not_applicable_reason}) and not allowed"]
        rates = self.pass_rates()
        reasons = []
        for key, minimum in min_pass_rates.items():
            rate = rates.get(key, math.nan)
            if math.isnan(rate):
                reasons.append(f"behavioural pass rate {key!r} is missing")
            elif rate < minimum:
                reasons.append(f"behavioural pass rate {key!r} {rate:.3f} < minimum {minimum:.3f}")
        return reasons

    def to_dict(self) -> dict:
        """A JSON-able dict (for ``metrics.json``), including ``pass_rates``."""
        out = asdict(self)
        for suite_dict, suite in zip(out["suites"], self.suites):
            suite_dict["type"] = suite_dict.pop("kind")
            suite_dict["pass_rate"] = suite.pass_rate
        out["pass_rates"] = self.pass_rates()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping) -> BehaviourReport:
        """Rebuild a report from ``to_dict()`` output (e.g. a champion's stored metrics)."""
        suites = [
            SuiteResult(
                name=s["name"],
                kind=s["type"],
                description=s["description"],
                cases=s["cases"],
                passed=s["passed"],
                failures=[Failure(**f) for f in s["failures"]],
            )
            for s in raw["suites"]
        ]
        fields = ("applicable", "not_applicable_reason", "label_names", "positive_label",
                  "negative_label", "settings")
        return cls(**{name: raw[name] for name in fields}, suites=suites)

    def to_markdown(self) -> str:
        """A "Behavioural tests" section: pass rates by suite and type, then failing examples."""
        lines = ["## Behavioural tests", ""]
        if not self.applicable:
            lines.append(f"**Not applicable:** {_cell(self.not_applicable_reason)}.")
            return "\n".join(lines) + "\n"
        s = self.settings
        lines += [
            f"Positive label `{self.positive_label}`, negative label `{self.negative_label}`; "
            f"seed {s['seed']}, up to {s['max_cases_per_suite']} cases per suite, "
            f"directional tolerance {s['dir_tolerance']}. A type's pass rate is the mean of its "
            "suites'.",
            "",
            "| Suite | Type | Cases | Passed | Pass rate | Checks |",
            "|---|---|---:|---:|---:|---|",
        ]
        for suite in self.suites:
            lines.append(
                f"| {suite.name} | {suite.kind} | {suite.cases} | {suite.passed} "
                f"| {suite.pass_rate:.1%} | {_cell(suite.description)} |"
            )
        rates = self.pass_rates()
        for kind in EXPECTATIONS:
            of_kind = [suite for suite in self.suites if suite.kind == kind]
            if of_kind:
                lines.append(
                    f"| **all {kind}** | {kind} | {sum(x.cases for x in of_kind)} "
                    f"| {sum(x.passed for x in of_kind)} | **{rates[kind.lower()]:.1%}** | |"
                )
        for suite in (suite for suite in self.suites if suite.failures):
            lines += ["", f"### Failing: {suite.name} ({suite.cases - suite.passed} of "
                          f"{suite.cases}, first {len(suite.failures)} shown)", ""]
            with_original = suite.kind != MFT
            lines.append("| " + ("Original | " if with_original else "") + "Text | Expected | Got | Scores |")
            lines.append("|---" * (5 if with_original else 4) + "|")
            for failure in suite.failures:
                original = f"{_cell(failure.original)} | " if with_original else ""
                lines.append(
                    f"| {original}{_cell(failure.text)} | {_cell(failure.expected)} "
                    f"| {_cell(failure.got)} | {_scores(failure)} |"
                )
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _scores(failure: Failure) -> str:
    now = ", ".join(f"{label} {p:.3f}" for label, p in failure.scores.items())
    if not failure.original_scores:
        return _cell(now)
    before = ", ".join(f"{label} {p:.3f}" for label, p in failure.original_scores.items())
    return _cell(f"{now} (original: {before})")


# ---------------------------------------------------------------------------- runner


def _score(predict_proba, texts: list[str], num_labels: int, batch_size: int) -> np.ndarray:
    """Probabilities for ``texts`` in batches, checked for shape and being probabilities."""
    start, chunks = time.perf_counter(), []
    for begin in range(0, len(texts), batch_size):
        batch = texts[begin : begin + batch_size]
        probs = np.asarray(predict_proba(batch), dtype=np.float64)
        if probs.shape != (len(batch), num_labels):
            raise BehaviourError(
                f"predict_proba returned shape {probs.shape} for {len(batch)} texts and "
                f"{num_labels} labels; expected {(len(batch), num_labels)}"
            )
        if not np.isfinite(probs).all():
            raise BehaviourError("predict_proba returned NaN or infinite values")
        sums = probs.sum(axis=1)
        if (probs < 0).any() or not np.allclose(sums, 1.0, atol=1e-2):
            raise BehaviourError(
                "predict_proba must return probabilities (non-negative, rows summing to 1); "
                f"row sums range {sums.min():.3f}..{sums.max():.3f}"
            )
        chunks.append(probs)
        done, elapsed = begin + len(batch), time.perf_counter() - start
        log.debug("behaviour: scored %d/%d texts (%.0f texts/s)", done, len(texts), done / elapsed)
    elapsed = time.perf_counter() - start
    log.info("behaviour: scored %d texts in %.1fs (%.0f texts/s)", len(texts), elapsed,
             len(texts) / max(elapsed, 1e-9))
    return np.concatenate(chunks)


@dataclass(frozen=True)
class _Judge:
    """Decides cases from scored probabilities; ``probs[text]`` is a text's row."""

    label_names: Sequence[str]
    positive: int
    negative: int
    dir_tolerance: float
    probs: Mapping[str, np.ndarray]

    def verdict(self, kind: str, case: Case) -> tuple[bool, str, str]:
        """(passed, expected, got) for the report."""
        labels, now = self.label_names, self.probs[case.text]
        got = int(np.argmax(now))
        if kind == MFT:
            want = self.positive if case.expected == POSITIVE else self.negative
            return got == want, labels[want], labels[got]
        before = self.probs[case.original]
        if kind == INV:
            want = int(np.argmax(before))
            return got == want, f"{labels[want]} (as the original)", labels[got]
        old, new = before[self.positive], now[self.positive]
        rising = case.expected == UP
        change = (new - old) if rising else (old - new)
        at_end = old >= 1 - self.dir_tolerance if rising else old <= self.dir_tolerance
        passed = bool(change > 0 or (at_end and change >= -self.dir_tolerance))
        expected = f"{labels[self.positive]} score {case.expected} from {old:.3f}"
        return passed, expected, f"{new:.3f} ({new - old:+.3f})"

    def failure(self, case: Case, expected: str, got: str) -> Failure:
        def scores(text: str) -> dict[str, float]:
            return {label: round(float(p), 4) for label, p in zip(self.label_names, self.probs[text])}

        if not case.original:
            return Failure(case.text, expected, got, scores(case.text))
        return Failure(case.text, expected, got, scores(case.text), case.original, scores(case.original))

    def run(self, suite: Suite, cases: list[Case], max_failures: int) -> SuiteResult:
        passed, failures = 0, []
        for case in cases:
            ok, expected, got = self.verdict(suite.kind, case)
            passed += ok
            if not ok and len(failures) < max_failures:
                failures.append(self.failure(case, expected, got))
        return SuiteResult(suite.name, suite.kind, suite.description, len(cases), passed, failures)


def run_suites(
    predict_proba: Callable[[list[str]], np.ndarray],
    label_names: Sequence[str],
    max_cases_per_suite: int = DEFAULT_MAX_CASES_PER_SUITE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    seed: int = 0,
    dir_tolerance: float = DEFAULT_DIR_TOLERANCE,
    max_failures: int = DEFAULT_MAX_FAILURES,
    suites: Sequence[Suite] = SUITES,
) -> BehaviourReport:
    """Run the behavioural suites against a classifier.

    Args:
        predict_proba: Maps a list of texts to an (N, K) array of probabilities, columns in
            label-id order.
        label_names: The model's label names in id order (``id2label``).
        max_cases_per_suite: Cases drawn per suite (the default 40 gives 360 cases).
        batch_size: Texts per ``predict_proba`` call.
        seed: Picks the cases; the same seed gives the same cases.
        dir_tolerance: How close to 0 or 1 a DIR original's positive score counts as already
            at that end, and how far the score may then move the wrong way.
        max_failures: Failing examples kept per suite.
        suites: The suites to run.

    Returns:
        The report; not applicable (and ``predict_proba`` never called) when the labels are
        not sentiment labels.

    Raises:
        BehaviourError: Bad settings or label names, or ``predict_proba`` output that is not an
            (N, K) array of probabilities.
    """
    if batch_size < 1 or max_failures < 0 or not 0.0 <= dir_tolerance < 0.5:
        raise BehaviourError(
            f"need batch_size >= 1, max_failures >= 0 and 0 <= dir_tolerance < 0.5; got "
            f"{batch_size}, {max_failures}, {dir_tolerance}"
        )
    settings = {"seed": seed, "max_cases_per_suite": max_cases_per_suite, "dir_tolerance": dir_tolerance}
    label_names = list(label_names)
    try:
        positive, negative = sentiment_label_ids(label_names)
    except NotSentimentLabels as err:
        log.warning("behavioural tests not applicable: %s", err)
        return BehaviourReport(False, str(err), label_names, None, None, settings)
    planned = [(suite, suite.generate(seed, max_cases_per_suite)) for suite in suites]
    # Each distinct text once, shortest first so that batches pad little.
    texts = sorted(
        dict.fromkeys(t for _, cases in planned for case in cases for t in (case.original, case.text) if t),
        key=len,
    )
    probs = _score(predict_proba, texts, len(label_names), batch_size)
    judge = _Judge(label_names, positive, negative, dir_tolerance, dict(zip(texts, probs)))
    results = [judge.run(suite, cases, max_failures) for suite, cases in planned]
    report = BehaviourReport(
        True, "", label_names, label_names[positive], label_names[negative], settings, results
    )
    log.info("behaviour pass rates: %s", {k: round(v, 3) for k, v in report.pass_rates().items()})
    return report
