"""Behavioural suites as data: the suite file format (YAML or JSON), read, checked and bound to a model's labels.

The format (``format: textclf-behaviour/1``; docs/behaviour.md describes it with examples)::

    name: sentiment
    labels:                      # the roles the cases name -> the label names they match (any case)
      positive: [positive, pos, good]
      negative: [negative, neg, bad]
    binary_ids: [negative, positive]   # optional: a model whose labels are exactly 0 and 1
    slots:                       # fillers of {slot} in templates; {Slot} capitalises, {a:slot} adds a/an
      noun: [movie, film]
    text_sets:                   # named lists of templates, which a suite's texts take with from: [name]
      reviews: ["{name} loved it.", "A dull {noun}."]
    suites:
      - {name: mft_short, type: MFT, description: ..., cases: [{label: positive, templates: ["A {adj} {noun}."],
         slots: {adj: [good, great]}}, {label: negative, texts: ["Awful."]}]}
      - {name: inv_typos, type: INV, texts: {templates: [...], fillings: 3}, perturbations: [typo]}
      - {name: inv_names, type: INV, texts: {templates: ["{name} loved it."]}, swap_slots: [name]}
      - {name: dir_up, type: DIR, label: positive, direction: up, texts: {templates: [...]}, append: ["I loved it."]}

A template is filled with every combination of its slots' fillers, or with ``fillings`` random draws.
INV suites edit their texts with built-in perturbations (``textclf.behaviour.perturb.PERTURBATIONS``) or
fill the same template with other fillers (``swap_slots``); DIR suites append sentences.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from textclf.behaviour.cases import DIR, DOWN, INV, KINDS, MFT, SAME, UP, BehaviourError, Case, Suite
from textclf.behaviour.perturb import PERTURBATIONS

FORMAT = "textclf-behaviour/1"
BUILT_IN = ("sentiment.yaml",)  # shipped suite files, chosen automatically when their roles match the labels
_PLACEHOLDER = re.compile(r"\{(a:)?([A-Za-z_]\w*)\}")


@dataclass(frozen=True)
class SuiteFile:
    """A parsed suite file: its roles and suites' specs, not yet bound to a model's labels."""

    name: str
    source: str
    labels: Mapping[str, list[str]]
    binary_ids: list[str]
    slots: Mapping[str, list[str]]
    suites: list[dict]
    text_sets: Mapping[str, list[str]]

    def roles_for(self, label_names: Sequence[str]) -> tuple[dict[str, int] | None, str]:
        """(role -> label id, "") when each role matches exactly one label, else (None, why not)."""
        names = [str(name).strip().lower() for name in label_names]
        if set(names) == {"0", "1"} and len(names) == 2 and self.binary_ids:
            return {self.binary_ids[0]: names.index("0"), self.binary_ids[1]: names.index("1")}, ""
        roles, problems = {}, []
        for role, aliases in self.labels.items():
            matches = [i for i, name in enumerate(names) if name in {a.lower() for a in aliases}]
            if len(matches) == 1:
                roles[role] = matches[0]
            else:
                problems.append(f"{role} ({'/'.join(aliases)}) matches {len(matches)} labels")
        if problems:
            return None, f"labels {list(label_names)} do not fit {self.name}: " + "; ".join(problems)
        return roles, ""

    def bind(self, label_names: Sequence[str]) -> list[Suite]:
        """The file's suites for a model with these labels.

        Raises:
            BehaviourError: the roles do not match the labels one to one.
        """
        roles, problem = self.roles_for(label_names)
        if roles is None:
            raise BehaviourError(f"{self.source}: {problem}")
        return [
            Suite(spec["name"], spec["type"], spec.get("description", ""), _builder(self, spec), self.name, roles)
            for spec in self.suites
        ]


def parse(raw: object, source: str) -> SuiteFile:
    """Check a suite file's content (as loaded from YAML/JSON) and return it.

    Raises:
        BehaviourError: naming the file, the suite and what is wrong.
    """
    if not isinstance(raw, Mapping) or raw.get("format") != FORMAT:
        raise BehaviourError(f"{source}: not a suite file (needs 'format: {FORMAT}' at the top)")
    labels = raw.get("labels") or {}
    slots = raw.get("slots") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, list) and v for v in labels.values()):
        raise BehaviourError(f"{source}: 'labels' maps each role to a list of label names")
    if not isinstance(slots, Mapping) or not all(isinstance(v, list) and v for v in slots.values()):
        raise BehaviourError(f"{source}: 'slots' maps each slot to a list of fillers")
    suites = raw.get("suites")
    if not isinstance(suites, list) or not suites:
        raise BehaviourError(f"{source}: 'suites' is a list of at least one suite")
    text_sets = raw.get("text_sets") or {}
    if not isinstance(text_sets, Mapping) or not all(isinstance(v, list) and v for v in text_sets.values()):
        raise BehaviourError(f"{source}: 'text_sets' maps each name to a list of templates")
    parsed = SuiteFile(
        str(raw.get("name") or source),
        source,
        {k: [str(a) for a in v] for k, v in labels.items()},
        [str(r) for r in raw.get("binary_ids") or []],
        {k: [str(f) for f in v] for k, v in slots.items()},
        list(suites),
        {k: [str(t) for t in v] for k, v in text_sets.items()},
    )
    names = set()
    for number, spec in enumerate(suites, start=1):
        label = spec.get("name", "?") if isinstance(spec, Mapping) else repr(spec)
        where = f"{source}: suite {number} ({label})"
        _check_suite(parsed, spec, where)
        if spec["name"] in names:
            raise BehaviourError(f"{where}: the name is used twice")
        names.add(spec["name"])
    if parsed.binary_ids and (len(parsed.binary_ids) != 2 or set(parsed.binary_ids) - set(labels)):
        raise BehaviourError(f"{source}: 'binary_ids' names two of the roles in 'labels', in id order")
    return parsed


def _check_suite(file: SuiteFile, spec, where: str) -> None:
    if not isinstance(spec, Mapping) or not spec.get("name") or spec.get("type") not in KINDS:
        raise BehaviourError(f"{where}: needs a name and a type ({', '.join(KINDS)})")
    kind = spec["type"]
    if kind == MFT:
        groups = spec.get("cases")
        if not isinstance(groups, list) or not groups:
            raise BehaviourError(f"{where}: an MFT suite lists 'cases', each with a label and texts or templates")
        for group in groups:
            _check_role(file, group.get("label") if isinstance(group, Mapping) else None, where)
            _check_texts(file, group, where)
        return
    _check_texts(file, spec.get("texts"), where)
    if kind == INV:
        unknown = [p for p in spec.get("perturbations") or [] if p not in PERTURBATIONS]
        if unknown or not (spec.get("perturbations") or spec.get("swap_slots")):
            raise BehaviourError(
                f"{where}: an INV suite names perturbations ({', '.join(PERTURBATIONS)}) or "
                f"swap_slots; unknown: {unknown}"
            )
    else:
        _check_role(file, spec.get("label"), where)
        if spec.get("direction") not in (UP, DOWN) or not spec.get("append"):
            raise BehaviourError(f"{where}: a DIR suite has a label, a direction (up or down) and sentences to append")


def _check_role(file: SuiteFile, role, where: str) -> None:
    if role not in file.labels:
        raise BehaviourError(f"{where}: label {role!r} is not one of the file's roles {list(file.labels)}")


def _check_texts(file: SuiteFile, group, where: str) -> None:
    if not isinstance(group, Mapping) or not (group.get("texts") or group.get("templates") or group.get("from")):
        raise BehaviourError(f"{where}: give 'texts' (literal), 'templates' or 'from' (names of text_sets)")
    unknown = [name for name in group.get("from") or [] if name not in file.text_sets]
    if unknown:
        raise BehaviourError(f"{where}: 'from' names {unknown}, not in the file's text_sets {list(file.text_sets)}")
    for template in _templates(file, group):
        for name in _slot_names(template):
            if _filler_list(file, group, name) is None:
                raise BehaviourError(f"{where}: template {template!r} uses slot {{{name}}}, which has no fillers")


def _templates(file: SuiteFile, group: Mapping) -> list[str]:
    """A group's own templates, then those of the text sets it takes ``from``."""
    return [str(t) for t in group.get("templates") or []] + [
        t for name in group.get("from") or [] for t in file.text_sets[name]
    ]


def _slot_names(template: str) -> list[str]:
    return list(dict.fromkeys(match.group(2) for match in _PLACEHOLDER.finditer(template)))


def _filler_list(file: SuiteFile, group: Mapping, name: str) -> list[str] | None:
    """The fillers of slot ``name`` in a group: its own ``slots`` (a list, or another slot's name) over
    the file's; ``{Adj}`` takes ``adj``'s fillers, capitalised."""
    local = group.get("slots") or {}
    for key in (name, name.lower()):
        value = local.get(key, file.slots.get(key))
        if isinstance(value, str):
            value = file.slots.get(value)
        if value:
            fillers = [str(v) for v in value]
            return [f[:1].upper() + f[1:] for f in fillers] if key != name else fillers
    return None


def _fillers(file: SuiteFile, group: Mapping, name: str) -> list[str]:
    """:func:`_filler_list` of a slot that validation has checked has fillers."""
    fillers = _filler_list(file, group, name)
    if fillers is None:
        raise BehaviourError(f"slot {{{name}}} has no fillers")
    return fillers


def _fill(template: str, values: Mapping[str, str]) -> str:
    def replace(match: re.Match) -> str:
        word = values[match.group(2)]
        return (("an " if word[:1].lower() in "aeiou" else "a ") + word) if match.group(1) else word

    return _PLACEHOLDER.sub(replace, template)


def _fillings(file: SuiteFile, group: Mapping, template: str, rng: random.Random) -> list[dict[str, str]]:
    """Slot values for a template: every combination, or ``fillings`` random draws."""
    names = _slot_names(template)
    fillers = [_fillers(file, group, name) for name in names]
    if group.get("fillings"):
        return [{n: rng.choice(f) for n, f in zip(names, fillers)} for _ in range(int(group["fillings"]))]
    return [dict(zip(names, combination)) for combination in itertools.product(*fillers)]


def _texts(file: SuiteFile, group: Mapping, rng: random.Random) -> list[str]:
    texts = [str(t) for t in group.get("texts") or []]
    texts += [_fill(t, values) for t in _templates(file, group) for values in _fillings(file, group, t, rng)]
    return list(dict.fromkeys(texts))


def _swapped(file: SuiteFile, group: Mapping, swap: list[str], rng: random.Random) -> list[Case]:
    """The same template filled twice, the ``swap`` slots with other fillers the second time."""
    cases = []
    for template in _templates(file, group):
        if not set(swap) & set(_slot_names(template)):
            continue
        for values in _fillings(file, group, template, rng):
            edited = dict(values)
            for name in set(swap) & set(values):
                edited[name] = rng.choice([f for f in _fillers(file, group, name) if f != values[name]])
            cases.append(Case(_fill(template, edited), SAME, _fill(template, values)))
    return cases


def _builder(file: SuiteFile, spec: Mapping):
    """The suite's ``build(rng)``: its whole pool of cases."""

    def build(rng: random.Random) -> list[Case]:
        if spec["type"] == MFT:
            return [Case(text, group["label"]) for group in spec["cases"] for text in _texts(file, group, rng)]
        if spec["type"] == DIR:
            return [
                Case(f"{base} {sentence}", spec["direction"], base, spec["label"])
                for base in _texts(file, spec["texts"], rng)
                for sentence in spec["append"]
            ]
        cases = [
            Case(edited, SAME, base)
            for base in _texts(file, spec["texts"], rng)
            for name in spec.get("perturbations") or []
            if (edited := PERTURBATIONS[name].apply(base, rng)) is not None
        ]
        return cases + _swapped(file, spec["texts"], list(spec.get("swap_slots") or []), rng)

    return build


def load(location: str) -> SuiteFile:
    """A suite file from a path or ``gs://`` URI (YAML, or JSON: ``.json``), checked.

    Raises:
        BehaviourError: unreadable, not YAML/JSON, or not a valid suite file (the message says where).
    """
    import yaml

    from textclf.platform import storage

    try:
        text = storage.read_text(location)
    except (OSError, ValueError) as error:
        raise BehaviourError(f"cannot read the suite file {location}: {error}") from error
    try:
        raw = json.loads(text) if location.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise BehaviourError(
            f"{location} is not valid {'JSON' if location.endswith('.json') else 'YAML'}: {error}"
        ) from error
    return parse(raw, location)


def built_in(name: str) -> SuiteFile:
    """One of the shipped suite files (``BUILT_IN``)."""
    import yaml

    text = resources.files("textclf.behaviour").joinpath(name).read_text(encoding="utf-8")
    return parse(yaml.safe_load(text), name)


def sentiment_suites() -> list[Suite]:
    """The shipped sentiment suites bound to the labels ``negative``/``positive``."""
    return built_in("sentiment.yaml").bind(["negative", "positive"])
