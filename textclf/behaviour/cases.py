"""Behavioural test cases and suites: the three kinds, and how a suite draws its cases.

A suite's cases come from its ``build`` (a suite file's templates, ``textclf.behaviour.suitefile``, or
a model's own test texts, ``textclf.behaviour.neutral``) drawing from a seeded RNG, so the same seed
gives the same cases.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

MFT, INV, DIR = "MFT", "INV", "DIR"
KINDS = (MFT, INV, DIR)
SAME, UP, DOWN = "same", "up", "down"

DEFAULT_MAX_CASES_PER_SUITE = 40
DEFAULT_BATCH_SIZE = 64
DEFAULT_DIR_TOLERANCE = 0.05
DEFAULT_MAX_FAILURES = 5


class BehaviourError(ValueError):
    """Bad input to the behavioural tests: label names, a suite file, settings or ``predict_proba`` output."""


@dataclass(frozen=True)
class Case:
    """One labelled test case.

    Attributes:
        text: What the model is asked about.
        expected: MFT: the role (e.g. ``positive``) whose label is right; INV: ``same`` (the label
            predicted for ``original``); DIR: ``up`` or ``down`` (``label``'s probability against ``original``'s).
        original: INV and DIR: the unedited text; empty for MFT.
        label: DIR: the role whose probability must move.
    """

    text: str
    expected: str
    original: str = ""
    label: str = ""


@dataclass(frozen=True)
class Suite:
    """A named test suite.

    Attributes:
        name: Key in reports and in ``pass_rates()``.
        kind: ``MFT``, ``INV`` or ``DIR``.
        description: One line for the report.
        build: Returns the suite's whole pool of candidate cases, drawing any random choices from the RNG.
        source: Where the suite comes from: a suite file's name, or ``task-neutral``.
        roles: The roles its cases name (``positive``, ``spam``...), each bound to a label id of the model.
    """

    name: str
    kind: str
    description: str
    build: Callable[[random.Random], list[Case]]
    source: str = ""
    roles: Mapping[str, int] = field(default_factory=dict)

    def generate(self, seed: int = 0, max_cases: int = DEFAULT_MAX_CASES_PER_SUITE) -> list[Case]:
        """Return up to ``max_cases`` cases: the same for the same seed, balanced by expectation.

        Balancing matters for MFT: a model that always answers one class scores about 1/K, whatever
        the seed or size.
        """
        if max_cases < 1:
            raise BehaviourError(f"max_cases must be at least 1, got {max_cases}")
        rng = random.Random(f"{self.name}:{seed}")
        pool = list(dict.fromkeys(self.build(rng)))
        bad = [case for case in pool if not self.well_formed(case)]
        if not pool or bad:
            raise BehaviourError(f"suite {self.name} built {len(pool)} cases, {len(bad)} malformed (e.g. {bad[:1]})")
        groups: dict[str, list[Case]] = {}
        for case in pool:
            groups.setdefault(case.expected, []).append(case)
        for group in groups.values():
            rng.shuffle(group)
        interleaved = [c for row in itertools.zip_longest(*groups.values()) for c in row if c is not None]
        return interleaved[:max_cases]

    def well_formed(self, case: Case) -> bool:
        if not case.text.strip():
            return False
        if self.kind == MFT:
            return case.expected in self.roles
        if self.kind == INV:
            return case.expected == SAME and bool(case.original)
        return case.expected in (UP, DOWN) and case.label in self.roles and bool(case.original)
