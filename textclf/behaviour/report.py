"""The outcome of the behavioural suites: per-suite results and failures, for metrics.json,
the evaluation report (Markdown) and the gate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from textclf.behaviour.cases import KINDS, MFT, BehaviourError


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
    source: str = ""  # a suite file's name, or task-neutral

    @property
    def pass_rate(self) -> float:
        return self.passed / self.cases


@dataclass(frozen=True)
class BehaviourReport:
    """The outcome of ``run_suites``.

    Attributes:
        label_names: The model's labels, in id order.
        settings: seed, max_cases_per_suite, dir_tolerance.
        suites: One result per suite that ran, in run order.
        roles: Per suite file, its roles and the label each is bound to (``{"sentiment": {"positive": "pos"}}``).
        skipped: Suites that did not run (``{"name", "source", "reason"}``): too few test texts to edit.
        notes: Why a built-in suite file was not chosen, and the like.
    """

    label_names: list[str]
    settings: dict
    suites: list[SuiteResult] = field(default_factory=list)
    roles: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def pass_rates(self) -> dict[str, float]:
        """Pass rate per suite name, plus ``mft``/``inv``/``dir``: the mean over that type's suites."""
        rates = {suite.name: suite.pass_rate for suite in self.suites}
        for kind in KINDS:
            of_kind = [suite.pass_rate for suite in self.suites if suite.kind == kind]
            if of_kind:
                rates[kind.lower()] = sum(of_kind) / len(of_kind)
        return rates

    def kinds_run(self) -> set[str]:
        """``mft``, ``inv``, ``dir``: the types of which at least one suite ran."""
        return {suite.kind.lower() for suite in self.suites}

    def check(self, min_pass_rates: Mapping[str, float]) -> list[str]:
        """Reasons this report misses the minimums; an empty list means it meets them all.

        Fails closed: no suite at all fails, and so does a minimum for a suite name that did not run. A
        minimum for a type (``mft``, ``inv``, ``dir``) of which no suite fits the model's labels (MFT and
        DIR suites need a suite file for the task) is not checked; ``kinds_run`` says which were.

        Args:
            min_pass_rates: Minimum pass rate (0..1) by ``pass_rates()`` key, e.g.
                ``{"mft": 0.8, "inv": 0.9, "dir": 0.8}``.
        """
        for key, minimum in min_pass_rates.items():
            if not 0.0 <= minimum <= 1.0:
                raise BehaviourError(f"minimum pass rate for {key!r} must be in [0, 1], got {minimum}")
        if not self.suites:
            return ["no behavioural suite ran"]
        rates, kinds = self.pass_rates(), {kind.lower() for kind in KINDS}
        reasons = []
        for key, minimum in min_pass_rates.items():
            rate = rates.get(key, math.nan)
            if math.isnan(rate):
                if key not in kinds:
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
        """Rebuild a report from ``to_dict()`` output (e.g. a champion's stored metrics, also of the
        sentiment-only reports written before suites were data)."""
        suites = [
            SuiteResult(
                name=s["name"],
                kind=s["type"],
                description=s["description"],
                cases=s["cases"],
                passed=s["passed"],
                failures=[Failure(**f) for f in s["failures"]],
                source=s.get("source", ""),
            )
            for s in raw["suites"]
        ]
        notes = list(raw.get("notes", []))
        if raw.get("applicable") is False and raw.get("not_applicable_reason"):
            notes.append(f"not applicable: {raw['not_applicable_reason']}")
        return cls(
            list(raw["label_names"]),
            dict(raw.get("settings", {})),
            suites,
            dict(raw.get("roles", {})),
            list(raw.get("skipped", [])),
            notes,
        )

    def to_markdown(self) -> str:
        """A "Behavioural tests" section: where the suites come from, pass rates by suite and type, then
        failing examples."""
        lines = ["## Behavioural tests", ""]
        s = self.settings
        lines += [
            f"Seed {s.get('seed')}, up to {s.get('max_cases_per_suite')} cases per suite, directional tolerance "
            f"{s.get('dir_tolerance')}. A type's pass rate is the mean of its suites'.",
            "",
        ]
        lines += [
            f"- `{source}` suites: " + ", ".join(f"{role} = `{label}`" for role, label in roles.items())
            for source, roles in self.roles.items()
        ]
        if any(suite.source == "task-neutral" for suite in self.suites):
            lines.append(
                "- `task-neutral` suites: label-preserving edits of the model's own test texts; a case "
                "passes when the edit keeps the label the original got"
            )
        lines += [f"- {_cell(note)}" for note in self.notes]
        lines += [f"- not run: {item['name']} ({_cell(item['reason'])})" for item in self.skipped]
        if not self.suites:
            return "\n".join(lines + ["", "**No suite ran.**"]) + "\n"
        lines += [
            "",
            "| Suite | Source | Type | Cases | Passed | Pass rate | Checks |",
            "|---|---|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {x.name} | {x.source} | {x.kind} | {x.cases} | {x.passed} | {x.pass_rate:.1%} "
            f"| {_cell(x.description)} |"
            for x in self.suites
        ]
        rates = self.pass_rates()
        for kind in KINDS:
            of_kind = [x for x in self.suites if x.kind == kind]
            if of_kind:
                lines.append(
                    f"| **all {kind}** | | {kind} | {sum(x.cases for x in of_kind)} "
                    f"| {sum(x.passed for x in of_kind)} | **{rates[kind.lower()]:.1%}** | |"
                )
        for suite in (suite for suite in self.suites if suite.failures):
            lines += [
                "",
                f"### Failing: {suite.name} ({suite.cases - suite.passed} of {suite.cases}, "
                f"first {len(suite.failures)} shown)",
                "",
            ]
            lines += _failure_table(suite)
        return "\n".join(lines) + "\n"


def _failure_table(suite: SuiteResult) -> list[str]:
    with_original = suite.kind != MFT
    lines = [
        "| " + ("Original | " if with_original else "") + "Text | Expected | Got | Scores |",
        "|---" * (5 if with_original else 4) + "|",
    ]
    for failure in suite.failures:
        original = f"{_cell(failure.original)} | " if with_original else ""
        lines.append(
            f"| {original}{_cell(failure.text)} | {_cell(failure.expected)} | {_cell(failure.got)} "
            f"| {_scores(failure)} |"
        )
    return lines


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _scores(failure: Failure) -> str:
    now = ", ".join(f"{label} {p:.3f}" for label, p in failure.scores.items())
    if not failure.original_scores:
        return _cell(now)
    before = ", ".join(f"{label} {p:.3f}" for label, p in failure.original_scores.items())
    return _cell(f"{now} (original: {before})")
