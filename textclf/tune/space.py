"""The search space: which ``TrainSettings`` fields a tuning run tries, over what values.

A space is a mapping from field names to what to try, written as YAML or JSON::

    learning_rate: {low: 2.0e-5, high: 3.0e-4, log: true}   # float range, sampled on a log scale
    epochs: {low: 1, high: 4}                                # int range (``step`` for a coarser grid)
    batch_size: {choices: [16, 32, 64]}                      # any field: a list of its values

It is checked against the dataclass before any trial runs: an unknown field, a field that does not
change the model (``log_every``...), a value of the wrong type, an empty or reversed range, a log
range that reaches zero, or a value the settings themselves refuse (``epochs: {low: 0, ...}``) is a
:class:`SearchSpaceError` that names the field. The same space becomes Optuna distributions
(locally), Katib ``parameters`` and Vertex AI ``StudySpec`` parameters, so every engine searches the
same values.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textclf.settings import type_name
from textclf.train.settings import TrainSettings

if TYPE_CHECKING:
    from textclf.tune.settings import TuneSettings

log = logging.getLogger(__name__)
DEFAULT_SPACE_FILE = Path(__file__).with_name("default_space.yaml")
KEYS = {"low", "high", "log", "step", "choices"}
# Fields that change how fast or where a run trains, not the model it ends with: tuning them would
# spend trials on noise. (grad_accum_steps with batch_size does change the effective batch; tune
# batch_size instead.)
NOT_TUNABLE = {
    "base_model": "the model is what is tuned, not a hyper-parameter of it: tune each base model on its own",
    "seed": "a different seed is noise, not a better setting",
    "precision": "it changes speed, not the model to aim for",
    "torch_compile": "it changes speed only",
    "eval_batch_size": "it changes speed only",
    "log_every": "it changes logging only",
    "dataloader_workers": "it changes speed only",
    "checkpoint_every_steps": "it changes checkpointing only",
    "checkpoint_every_minutes": "it changes checkpointing only",
    "max_steps": "it is a smoke-run cap; cap trials with trial_max_steps instead",
}
# Fields that set how long a run trains. A trial capped at trial_max_steps trains the same number of
# steps whatever they say (its schedule spans the cap), so its score says nothing about them.
RUN_LENGTH_FIELDS = ("epochs", "min_train_steps")


class SearchSpaceError(ValueError):
    """A search space that does not fit ``TrainSettings``; the message names the field."""


@dataclass(frozen=True)
class Parameter:
    """One tuned field: a range (``low``..``high``, optionally log-scaled or stepped) or ``choices``."""

    name: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def contains(self, value) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if self.low is None or self.high is None:  # parse_space gives every numeric parameter both bounds
            return False
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = ", log" if self.log else (f", step {self.step}" if self.step else "")
        return f"[{self.low}, {self.high}{scale}]"


@dataclass(frozen=True)
class SearchSpace:
    """The tuned fields, in the order the spec names them."""

    parameters: tuple[Parameter, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def to_spec(self) -> dict:
        """The space as the mapping it was written as (what :func:`parse_space` reads back)."""
        spec = {}
        for p in self.parameters:
            entry: dict[str, Any] = (
                {"choices": list(p.choices)} if p.kind == "categorical" else {"low": p.low, "high": p.high}
            )
            entry.update({"log": True} if p.log else {})
            entry.update({"step": p.step} if p.step else {})
            spec[p.name] = entry
        return spec

    def to_json(self) -> str:
        return json.dumps(self.to_spec(), sort_keys=False, separators=(",", ":"))

    def within_trial_cap(self, trial_max_steps: int) -> SearchSpace:
        """The parameters trials capped at ``trial_max_steps`` (0: uncapped) can measure: without the
        run-length fields, which then keep the base settings' values (logged, so nobody reads the
        best trial's value of a field it never tried).

        Raises:
            SearchSpaceError: nothing is left to tune.
        """
        dropped = [p.name for p in self.parameters if p.name in RUN_LENGTH_FIELDS] if trial_max_steps else []
        if not dropped:
            return self
        kept = tuple(p for p in self.parameters if p.name not in dropped)
        if not kept:
            raise SearchSpaceError(
                f"search space: trial_max_steps {trial_max_steps} caps every trial, so its only fields "
                f"({', '.join(dropped)}, how long a run trains) cannot be told apart: tune other fields "
                "or set trial_max_steps=0"
            )
        log.warning(
            "not tuned: %s: trials are capped at trial_max_steps %d, so they train as long whatever it says; "
            "the final model keeps the base settings' value",
            ", ".join(dropped),
            trial_max_steps,
        )
        return SearchSpace(kept)


def _field_kind(field: dataclasses.Field) -> str:
    return {"float": "float", "int": "int", "bool": "categorical", "str": "categorical"}[type_name(field)]


def _typed(name: str, field: dataclasses.Field, value: Any) -> Any:
    """``value`` as the field's type: YAML reads ``1e-5`` (no dot) as a string, so numeric text is
    taken for a float field; anything else of the wrong type is an error."""
    kind = type_name(field)
    if kind == "float" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in ("bool", "str") and type(value).__name__ == kind:
        return value
    raise SearchSpaceError(f"search space: {name}: {value!r} is not a {kind} (TrainSettings.{name} is {kind})")


def _check_allowed(name: str, value: Any) -> None:
    """Whether ``TrainSettings`` itself accepts ``value`` for ``name`` (its ``__post_init__`` rules)."""
    try:
        TrainSettings(**{name: value})
    except ValueError as error:
        raise SearchSpaceError(f"search space: {name}: {value!r} is not a valid setting: {error}") from None


def _range(name: str, field: dataclasses.Field, entry: dict) -> Parameter:
    if "low" not in entry or "high" not in entry:
        raise SearchSpaceError(f"search space: {name}: a range needs both low and high (or give choices)")
    low, high = _typed(name, field, entry["low"]), _typed(name, field, entry["high"])
    log, step = entry.get("log", False), entry.get("step")
    if not isinstance(log, bool):
        raise SearchSpaceError(f"search space: {name}: log must be true or false, got {log!r}")
    if not low < high:
        raise SearchSpaceError(f"search space: {name}: low must be below high, got [{low}, {high}]")
    if log and low <= 0:
        raise SearchSpaceError(f"search space: {name}: a log range must stay above 0, got low {low}")
    if step is not None:
        step = _typed(name, field, step)
        if log or step <= 0 or step > high - low:
            raise SearchSpaceError(
                f"search space: {name}: step must be positive, at most high - low, and not "
                f"combined with log; got {step}"
            )
    for value in (low, high):
        _check_allowed(name, value)
    return Parameter(name, _field_kind(field), low, high, log, step)


def _choices(name: str, field: dataclasses.Field, entry: dict) -> Parameter:
    if set(entry) - {"choices"}:
        raise SearchSpaceError(
            f"search space: {name}: choices cannot be combined with {sorted(set(entry) - {'choices'})}"
        )
    values = entry["choices"]
    if not isinstance(values, list) or not values:
        raise SearchSpaceError(f"search space: {name}: choices must be a non-empty list, got {values!r}")
    typed = [_typed(name, field, value) for value in values]
    if len(set(typed)) != len(typed):
        raise SearchSpaceError(f"search space: {name}: choices repeat a value: {values}")
    for value in typed:
        _check_allowed(name, value)
    return Parameter(name, "categorical", choices=tuple(typed))


def _parameter(name: str, entry: Any, fields: dict[str, dataclasses.Field]) -> Parameter:
    if name not in fields:
        raise SearchSpaceError(f"search space: unknown setting {name!r}; TrainSettings has {sorted(fields)}")
    if name in NOT_TUNABLE:
        raise SearchSpaceError(f"search space: {name} is not tunable: {NOT_TUNABLE[name]}")
    if not isinstance(entry, dict) or not entry:
        raise SearchSpaceError(
            f"search space: {name}: expected a mapping such as {{low: 1, high: 4}} or {{choices: [...]}}, got {entry!r}"
        )
    if set(entry) - KEYS:
        raise SearchSpaceError(
            f"search space: {name}: unknown key(s) {sorted(set(entry) - KEYS)}; allowed: {sorted(KEYS)}"
        )
    if "choices" in entry:
        return _choices(name, fields[name], entry)
    if _field_kind(fields[name]) == "categorical":
        raise SearchSpaceError(
            f"search space: {name} is a {type_name(fields[name])} setting: give choices, not a range"
        )
    return _range(name, fields[name], entry)


def parse_space(spec: Any) -> SearchSpace:
    """A :class:`SearchSpace` from its mapping (parsed YAML or JSON).

    Raises:
        SearchSpaceError: the spec does not fit ``TrainSettings`` (the message names the field and why).
    """
    if not isinstance(spec, dict) or not spec:
        raise SearchSpaceError(
            f"search space: expected a mapping of TrainSettings fields to ranges or choices, got {spec!r}"
        )
    fields = {field.name: field for field in dataclasses.fields(TrainSettings)}
    return SearchSpace(tuple(_parameter(str(name), entry, fields) for name, entry in spec.items()))


def read_space_text(value: str) -> str:
    """The spec's text: ``value`` itself when it is inline JSON or YAML (it starts with ``{`` or spans
    lines), else the file it names (local or ``gs://``); empty means the packaged default."""
    from textclf.platform import storage

    if not value.strip():
        return DEFAULT_SPACE_FILE.read_text()
    if value.lstrip().startswith("{") or "\n" in value.strip():
        return value
    try:
        return storage.read_text(value.strip())
    except FileNotFoundError as error:
        raise SearchSpaceError(
            f"search space: no such file {value.strip()!r} (give a YAML/JSON file, or the space inline as JSON)"
        ) from error


def load_space(value: str) -> SearchSpace:
    """The search space from ``value``: inline JSON/YAML, a YAML/JSON file (local or ``gs://``), or
    empty for the packaged default (``textclf/tune/default_space.yaml``)."""
    import yaml

    text = read_space_text(value)
    try:
        spec = yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both
    except yaml.YAMLError as error:
        raise SearchSpaceError(f"search space: not valid YAML or JSON: {error}") from None
    return parse_space(spec)


def trial_space(tune: TuneSettings) -> SearchSpace:
    """What a tuning run (``TuneSettings``) searches: its space, less what its capped trials cannot measure."""
    return load_space(tune.search_space).within_trial_cap(tune.trial_max_steps)


def default_space_json() -> str:
    """The packaged default space as compact JSON: the ``search_space`` parameter's default, so the
    compiled pipelines and the UI show the space they search."""
    return load_space("").to_json()
