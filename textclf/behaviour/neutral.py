"""Task-neutral invariance suites, built from a model's own test texts: they fit any classifier.

Each suite edits test texts in one label-preserving way (``textclf.behaviour.perturb``): a typo, lower
case, sentence punctuation, extra whitespace, another name or place, other digits, another web or
e-mail address. A case passes when the model gives the edit the label it gave the original, so no
expected label is needed and an intent, topic, spam or sentiment model is held to the same rules.

The texts are a seeded sample, streamed: per suite, the texts it can edit with the smallest seeded
hash (a function of the text and the seed only, as ``textclf.probe`` draws its sample), so the cases
do not depend on row order, a duplicated text counts once, and memory holds at most ``cases`` texts
per suite whatever the size of the split. A suite that finds
fewer than ``min_cases`` texts it can edit (no test text has a URL, say) is skipped, and the report
says so.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from textclf.behaviour.cases import DEFAULT_MAX_CASES_PER_SUITE, INV, SAME, Case, Suite
from textclf.behaviour.perturb import PERTURBATIONS

SOURCE = "task-neutral"
MIN_CASES = 10
# (suite name, perturbation): names distinct from a suite file's, so pass rates never collide.
NEUTRAL_SUITES = (
    ("neutral_typos", "typo"),
    ("neutral_case", "lower_case"),
    ("neutral_punctuation", "strip_punctuation"),
    ("neutral_whitespace", "whitespace"),
    ("neutral_names_places", "names_places"),
    ("neutral_numbers", "numbers"),
    ("neutral_urls_emails", "urls_emails"),
)


def _rank(text: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00neutral\x00{text}".encode(), digest_size=16).digest()


@dataclass
class _Sample:
    """The ``size`` editable texts of smallest rank seen so far, for one suite."""

    name: str
    perturbation: str
    size: int
    heap: list = field(default_factory=list)  # (inverted rank, original, edit): the top is the largest rank kept
    kept: set = field(default_factory=set)  # the inverted ranks in the heap: a duplicate text enters once

    def offer(self, text: str, rank: bytes, seed: int) -> None:
        inverted = bytes(255 - b for b in rank)
        if inverted in self.kept or len(self.heap) == self.size and inverted <= self.heap[0][0]:
            return  # ranks outside the sample need no edit: most texts stop here
        edit = PERTURBATIONS[self.perturbation].apply(text, random.Random(f"{seed}:{self.name}:{rank.hex()}"))
        if edit is None or edit.strip() == "" or edit == text:
            return
        item = (inverted, text, edit)
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, item)
        else:
            self.kept.discard(heapq.heapreplace(self.heap, item)[0])
        self.kept.add(inverted)

    def cases(self) -> list[Case]:
        return [Case(edit, SAME, text) for _, text, edit in sorted(self.heap, reverse=True)]


def neutral_suites(
    texts: Iterable[object], seed: int, cases: int = DEFAULT_MAX_CASES_PER_SUITE, min_cases: int = MIN_CASES
) -> tuple[list[Suite], list[dict]]:
    """The task-neutral suites drawn from ``texts`` (a model's test texts, streamed once), and the
    suites skipped for want of texts they can edit (``{"name", "source", "reason"}``)."""
    samples = [_Sample(name, perturbation, cases) for name, perturbation in NEUTRAL_SUITES]
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            continue
        rank = _rank(text, seed)
        for sample in samples:
            sample.offer(text, rank, seed)
    suites, skipped = [], []
    for sample in samples:
        perturbation = PERTURBATIONS[sample.perturbation]
        drawn = sample.cases()
        if len(drawn) < min_cases:
            skipped.append(
                {
                    "name": sample.name,
                    "source": SOURCE,
                    "reason": f"{len(drawn)} test texts can be edited this way ({perturbation.description}); "
                    f"at least {min_cases} are needed",
                }
            )
            continue
        suites.append(
            Suite(
                sample.name,
                INV,
                f"{perturbation.description[:1].upper()}{perturbation.description[1:]} keeps the label of a test text",
                _fixed_cases(drawn),
                SOURCE,
            )
        )
    return suites, skipped


def _fixed_cases(drawn: list[Case]) -> Callable[[random.Random], list[Case]]:
    """A suite builder that returns ``drawn`` (already drawn from the texts) whatever the RNG."""
    return lambda rng: list(drawn)
