"""Label-preserving edits of a text, for the invariance (INV) suites.

Each perturbation takes a text and a seeded ``random.Random`` and returns the edited text, or None
when it does not apply (no word of four letters for a typo, no digit for numbers, ...). They work on
any text of any task, so the task-neutral suites (``textclf.behaviour.neutral``) apply them to a
model's own test texts, and a suite file names them (``perturbations: [typo]``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from textclf.behaviour.lexicon import CONTRACTIONS, EMAILS, FIRST_NAMES, PLACES, URLS


@dataclass(frozen=True)
class Perturbation:
    """A named edit: ``apply(text, rng)`` -> the edited text, or None when it does not apply."""

    name: str
    description: str
    apply: Callable[[str, random.Random], str | None]


def _changed(text: str, edited: str) -> str | None:
    return edited if edited != text else None


def add_typo(text: str, rng: random.Random) -> str | None:
    """Swap two neighbouring, different letters inside a word of 4+ letters (not the first letter)."""
    spots = [
        i
        for word in re.finditer(r"[A-Za-z]{4,}", text)
        for i in range(word.start() + 1, word.end() - 1)
        if text[i] != text[i + 1]
    ]
    if not spots:
        return None
    i = rng.choice(spots)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def lower_case(text: str, rng: random.Random) -> str | None:
    return _changed(text, text.lower())


def upper_case(text: str, rng: random.Random) -> str | None:
    return _changed(text, text.upper())


# Sentence punctuation: marks before a space or the end, not those inside "3.5", "1,000" or "www.a.com".
_PUNCTUATION = re.compile(r"[.,;:!?]+(?=\s|$)")


def strip_punctuation(text: str, rng: random.Random) -> str | None:
    """Drop sentence punctuation; a text without any gets a full stop instead."""
    stripped = " ".join(_PUNCTUATION.sub(" ", text).split())
    if not stripped:
        return None
    return _changed(text, stripped if stripped != " ".join(text.split()) else text.rstrip() + ".")


def exclaim(text: str, rng: random.Random) -> str | None:
    return _changed(text, text.rstrip().rstrip(".!?") + "!!!")


def add_whitespace(text: str, rng: random.Random) -> str | None:
    """Double one space, or add a newline or spaces at an end: what copy and paste does to a text."""
    spaces = [m.start() for m in re.finditer(" ", text)]
    choices = ["end", "start"] + (["double"] if spaces else [])
    where = rng.choice(choices)
    if where == "double":
        i = rng.choice(spaces)
        return text[:i] + "  " + text[i:].lstrip(" ")
    return text + "\n" if where == "end" else "  " + text


def _swap_word(text: str, rng: random.Random, words: tuple[str, ...]) -> str | None:
    """Replace one whole-word occurrence of ``words`` (as written, capitalised) with another of them."""
    found = list(re.finditer(r"\b(" + "|".join(map(re.escape, words)) + r")\b", text))
    if not found:
        return None
    match = rng.choice(found)
    other = rng.choice([w for w in words if w != match.group(0)])
    return text[: match.start()] + other + text[match.end() :]


def swap_name(text: str, rng: random.Random) -> str | None:
    return _swap_word(text, rng, FIRST_NAMES)


def swap_place(text: str, rng: random.Random) -> str | None:
    return _swap_word(text, rng, PLACES)


def swap_name_or_place(text: str, rng: random.Random) -> str | None:
    """One person's first name or one place (city or country) replaced by another of its kind."""
    edits = [edit for edit in (swap_name(text, rng), swap_place(text, rng)) if edit is not None]
    return rng.choice(edits) if edits else None


def change_numbers(text: str, rng: random.Random) -> str | None:
    """Every run of digits replaced by other digits of the same length (no new leading zero)."""
    if not re.search(r"\d", text):
        return None

    def other(match: re.Match) -> str:
        digits = match.group(0)
        new = [rng.choice("0123456789") for _ in digits]
        if len(digits) > 1 and digits[0] != "0":
            new[0] = rng.choice("123456789")
        if "".join(new) == digits:
            new[-1] = str((int(digits[-1]) + 1) % 10)
        return "".join(new)

    return _changed(text, re.sub(r"\d+", other, text))


_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")


def swap_url_or_email(text: str, rng: random.Random) -> str | None:
    """One web address or e-mail address replaced by another of its kind."""
    found = [(m, URLS) for m in _URL.finditer(text)] + [(m, EMAILS) for m in _EMAIL.finditer(text)]
    if not found:
        return None
    match, pool = rng.choice(found)
    other = rng.choice([item for item in pool if item != match.group(0)])
    return text[: match.start()] + other + text[match.end() :]


_CONTRACTED = {c.lower(): e for c, e in CONTRACTIONS}
_EXPANDED = {e.lower(): c for c, e in CONTRACTIONS}


def _word_pattern(words) -> re.Pattern:
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


_CONTRACTED_RE, _EXPANDED_RE = _word_pattern(_CONTRACTED), _word_pattern(_EXPANDED)


def swap_contractions(text: str) -> str:
    """Expand every contraction in ``text``; if it has none, contract every expandable phrase."""
    pattern, table = (_CONTRACTED_RE, _CONTRACTED) if _CONTRACTED_RE.search(text) else (_EXPANDED_RE, _EXPANDED)

    def replace(match: re.Match) -> str:
        new = table[match.group(0).lower()]
        return new[0].upper() + new[1:] if match.group(0)[0].isupper() else new

    return pattern.sub(replace, text)


def contractions(text: str, rng: random.Random) -> str | None:
    return _changed(text, swap_contractions(text))


PERTURBATIONS = {
    p.name: p
    for p in (
        Perturbation("typo", "one swapped pair of neighbouring letters", add_typo),
        Perturbation("lower_case", "the whole text in lower case", lower_case),
        Perturbation("upper_case", "the whole text in upper case", upper_case),
        Perturbation("strip_punctuation", "sentence punctuation dropped (or a full stop added)", strip_punctuation),
        Perturbation("exclaim", "the final punctuation replaced by '!!!'", exclaim),
        Perturbation("whitespace", "a doubled space, or spaces or a newline at an end", add_whitespace),
        Perturbation("names_places", "another first name or place", swap_name_or_place),
        Perturbation("numbers", "other digits of the same length", change_numbers),
        Perturbation("urls_emails", "another web or e-mail address", swap_url_or_email),
        Perturbation("contractions", "'isn't' <-> 'is not'", contractions),
    )
}
