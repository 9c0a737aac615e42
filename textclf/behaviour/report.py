"""The outcome of the behavioural suites: per-suite results and failures, for metrics.json,
the evaluation report (Markdown) and the gate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from textclf.behaviour.cases import EXPECTATIONS, MFT, BehaviourError

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
