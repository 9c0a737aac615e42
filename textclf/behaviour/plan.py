"""Which behavioural suites a model gets: the task-neutral suites from its own test texts, always, and
the suites of a suite file: the one named by ``behaviour_suites``, or (``auto``) each shipped file
whose roles fit the model's labels (the sentiment suites for negative/positive)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from textclf.behaviour.cases import DEFAULT_MAX_CASES_PER_SUITE, Suite
from textclf.behaviour.neutral import neutral_suites
from textclf.behaviour.suitefile import BUILT_IN, built_in, load

AUTO, NONE = "auto", "none"


@dataclass
class SuitePlan:
    """The suites a model is tested with, those skipped and why, and notes for the report."""

    suites: list[Suite] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def file_suites(label_names: Sequence[str], behaviour_suites: str) -> tuple[list[Suite], list[str]]:
    """The suite-file suites for ``behaviour_suites`` (``auto``, ``none``, or a path / ``gs://`` URI), and notes.

    Raises:
        BehaviourError: a named file that cannot be read, is not a suite file, or whose roles do not fit the labels.
    """
    choice = behaviour_suites.strip() or AUTO
    if choice == NONE:
        return [], ["no suite file (behaviour_suites=none)"]
    if choice != AUTO:
        return load(choice).bind(label_names), []
    suites, notes = [], []
    for name in BUILT_IN:
        shipped = built_in(name)
        roles, problem = shipped.roles_for(label_names)
        if roles is None:
            notes.append(f"built-in {shipped.name} suites not used: {problem}")
        else:
            suites += shipped.bind(label_names)
    return suites, notes


def plan_suites(
    label_names: Sequence[str],
    behaviour_suites: str,
    test_texts: Iterable[str],
    seed: int,
    cases: int = DEFAULT_MAX_CASES_PER_SUITE,
) -> SuitePlan:
    """The task-neutral suites drawn from ``test_texts`` (streamed once) and the suite file's suites."""
    neutral, skipped = neutral_suites(test_texts, seed, cases)
    chosen, notes = file_suites(label_names, behaviour_suites)
    return SuitePlan([*chosen, *neutral], skipped, notes)
