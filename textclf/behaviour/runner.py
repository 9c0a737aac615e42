"""Running suites through any ``predict_proba``: scoring each distinct text once, and judging each case."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from textclf.behaviour.cases import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DIR_TOLERANCE,
    DEFAULT_MAX_CASES_PER_SUITE,
    DEFAULT_MAX_FAILURES,
    INV,
    MFT,
    UP,
    BehaviourError,
    Case,
    Suite,
)
from textclf.behaviour.report import BehaviourReport, Failure, SuiteResult

log = logging.getLogger(__name__)


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
    log.info("behaviour: scored %d texts in %.1fs (%.0f texts/s)", len(texts), elapsed, len(texts) / max(elapsed, 1e-9))
    return np.concatenate(chunks)


@dataclass(frozen=True)
class _Judge:
    """Decides cases from scored probabilities; ``probs[text]`` is a text's row."""

    label_names: Sequence[str]
    dir_tolerance: float
    probs: Mapping[str, np.ndarray]

    def verdict(self, suite: Suite, case: Case) -> tuple[bool, str, str]:
        """(passed, expected, got) for the report."""
        labels, now = self.label_names, self.probs[case.text]
        got = int(np.argmax(now))
        if suite.kind == MFT:
            want = suite.roles[case.expected]
            return got == want, labels[want], labels[got]
        before = self.probs[case.original]
        if suite.kind == INV:
            want = int(np.argmax(before))
            return got == want, f"{labels[want]} (as the original)", labels[got]
        target = suite.roles[case.label]
        old, new = before[target], now[target]
        rising = case.expected == UP
        change = (new - old) if rising else (old - new)
        at_end = old >= 1 - self.dir_tolerance if rising else old <= self.dir_tolerance
        passed = bool(change > 0 or (at_end and change >= -self.dir_tolerance))
        return passed, f"{labels[target]} score {case.expected} from {old:.3f}", f"{new:.3f} ({new - old:+.3f})"

    def failure(self, case: Case, expected: str, got: str) -> Failure:
        def scores(text: str) -> dict[str, float]:
            return {label: round(float(p), 4) for label, p in zip(self.label_names, self.probs[text])}

        if not case.original:
            return Failure(case.text, expected, got, scores(case.text))
        return Failure(case.text, expected, got, scores(case.text), case.original, scores(case.original))

    def run(self, suite: Suite, cases: list[Case], max_failures: int) -> SuiteResult:
        passed = 0
        failures: list[Failure] = []
        for case in cases:
            ok, expected, got = self.verdict(suite, case)
            passed += ok
            if not ok and len(failures) < max_failures:
                failures.append(self.failure(case, expected, got))
        return SuiteResult(suite.name, suite.kind, suite.description, len(cases), passed, failures, suite.source)


def run_suites(
    predict_proba: Callable[[list[str]], np.ndarray],
    label_names: Sequence[str],
    max_cases_per_suite: int = DEFAULT_MAX_CASES_PER_SUITE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    seed: int = 0,
    dir_tolerance: float = DEFAULT_DIR_TOLERANCE,
    max_failures: int = DEFAULT_MAX_FAILURES,
    suites: Sequence[Suite] | None = None,
    skipped: Sequence[dict] = (),
    notes: Sequence[str] = (),
) -> BehaviourReport:
    """Run behavioural suites against a classifier.

    Args:
        predict_proba: Maps a list of texts to an (N, K) array of probabilities, columns in label-id order.
        label_names: The model's label names in id order (``id2label``).
        max_cases_per_suite: Cases drawn per suite (40 by default).
        batch_size: Texts per ``predict_proba`` call.
        seed: Picks the cases; the same seed gives the same cases.
        dir_tolerance: How close to 0 or 1 a DIR original's score counts as already at that end, and
            how far the score may then move the wrong way.
        max_failures: Failing examples kept per suite.
        suites: The suites, bound to these labels (``textclf.behaviour.plan``); None: the shipped suite
            files whose roles fit the labels (the sentiment suites for sentiment labels), and none else.
        skipped: Suites that could not be built, for the report.
        notes: Lines for the report (why a suite file was not chosen).

    Returns:
        The report (with no suites, and ``predict_proba`` never called, when none was given or fits).

    Raises:
        BehaviourError: Bad settings, or ``predict_proba`` output that is not an (N, K) array of probabilities.
    """
    if batch_size < 1 or max_failures < 0 or not 0.0 <= dir_tolerance < 0.5:
        raise BehaviourError(
            f"need batch_size >= 1, max_failures >= 0 and 0 <= dir_tolerance < 0.5; got "
            f"{batch_size}, {max_failures}, {dir_tolerance}"
        )
    label_names = list(label_names)
    if suites is None:
        from textclf.behaviour.plan import file_suites

        suites, chosen_notes = file_suites(label_names, "auto")
        notes = [*notes, *chosen_notes]
    settings = {"seed": seed, "max_cases_per_suite": max_cases_per_suite, "dir_tolerance": dir_tolerance}
    roles = {suite.source: {role: label_names[i] for role, i in suite.roles.items()} for suite in suites if suite.roles}
    planned = [(suite, suite.generate(seed, max_cases_per_suite)) for suite in suites]
    # Each distinct text once, shortest first so that batches pad little.
    texts = sorted(
        dict.fromkeys(t for _, cases in planned for case in cases for t in (case.original, case.text) if t), key=len
    )
    results = []
    if texts:
        probs = _score(predict_proba, texts, len(label_names), batch_size)
        judge = _Judge(label_names, dir_tolerance, dict(zip(texts, probs)))
        results = [judge.run(suite, cases, max_failures) for suite, cases in planned]
    report = BehaviourReport(label_names, settings, results, roles, list(skipped), list(notes))
    log.info("behaviour pass rates: %s", {k: round(v, 3) for k, v in report.pass_rates().items()})
    return report
