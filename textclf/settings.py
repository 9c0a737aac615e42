"""Settings declared once: a dataclass field carries its default and its help text.

Every step's settings are a dataclass whose fields are made with :func:`setting`. The help text
sits in ``field.metadata["help"]``, where ``transformers.HfArgumentParser`` reads it for command
lines; the pipeline reads the same default and text for its parameters and the Kubeflow / Vertex
UI (``components/step.py``). Every field of a step's settings is a pipeline parameter, except the
names a class lists in ``LIBRARY_ONLY`` (a local folder, say). The metadata holds only what
``argparse.add_argument`` takes (``help``, ``choices``), because HfArgumentParser passes it on;
its ``help`` is therefore argparse's form of the text (``%`` doubled: argparse formats help
with ``%``), and :func:`help_of` gives the text as written, for the pipeline and the docs.
:class:`SettingsParser` reads the same dataclasses the same way without transformers (the model
server's command line, whose start-up time counts).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")  # a settings dataclass

DEFAULT_BASE_MODEL = "offline:all-MiniLM-L6-v2"
REQUIRED = dataclasses.MISSING  # setting(REQUIRED, help): a command-line flag without a default


def setting(default: Any, help: str, **argparse_options: Any) -> Any:  # noqa: A002 - argparse's name
    """A dataclass field with its help text.

    Args:
        default: the default value; a list or dict default is copied for each instance;
            ``REQUIRED``: none, the flag must be given (such a field comes before those with defaults).
        help: one or two sentences for ``--help``, the pipeline UI and the README.
        argparse_options: more ``add_argument`` options, e.g. ``choices=("head", "head_tail")``, or
            ``action="append"`` for a ``list[str]`` flag given once per item.
    """
    metadata = {"help": argparse_text(help), **argparse_options}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def argparse_text(text: str) -> str:
    """``text`` as argparse's help wants it: argparse formats help texts with ``%`` (for
    ``%(default)s``), so a literal ``%`` ("10% of N") must be doubled or ``--help`` crashes."""
    return text.replace("%", "%%")


def help_of(field: dataclasses.Field) -> str:
    """The help text of a :func:`setting` field as written (the metadata holds argparse's form)."""
    return field.metadata.get("help", "").replace("%%", "%")


def default_of(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise ValueError(f"setting {field.name!r} has no default")


def pipeline_fields(*classes: type) -> dict[str, dataclasses.Field]:
    """The pipeline parameters of ``classes`` by name, in declaration order."""
    fields: dict[str, dataclasses.Field] = {}
    for cls in classes:
        for field in dataclasses.fields(cls):
            if field.name not in getattr(cls, "LIBRARY_ONLY", ()):
                fields.setdefault(field.name, field)
    return fields


def from_values(cls: type[T], values: Mapping[str, Any], **overrides: Any) -> T:
    """An instance of the settings dataclass ``cls`` from the entries of ``values`` named like
    its fields (others are ignored), e.g. a step's ``locals()`` or an argparse namespace's vars."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in values.items() if name in names}, **overrides)


def to_lines(values: Mapping[str, Any]) -> str:
    """``name=value`` lines: settings as one string, which a pipeline can build from its parameters
    (``f"{channel}"`` becomes the parameter's value at run time) and :func:`from_lines` reads back."""
    return "\n".join(f"{name}={value}" for name, value in values.items())


def type_name(field: dataclasses.Field) -> str:
    """``"int"``, ``"float"``, ``"bool"``, ``"str"``...: the field's type as written, whether the
    annotation is still a string or was resolved (``HfArgumentParser`` resolves them in place)."""
    return field.type if isinstance(field.type, str) else field.type.__name__


def typed_value(field: dataclasses.Field, text: str) -> Any:
    """``text`` as the field's type, as pipeline backends render values in strings (``True``/``true``,
    ``3``/``3.0``, ``1e-05``/``0.00001``).

    Raises:
        ValueError: the text is not a value of that type (the message names the field).
    """
    kind, raw = type_name(field), text.strip()
    try:
        if kind == "bool":
            return {"true": True, "false": False, "1": True, "0": False}[raw.lower()]
        if kind == "int":
            number = float(raw)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind == "float":
            return float(raw)
    except (KeyError, ValueError):
        raise ValueError(f"setting {field.name}: {text!r} is not a {kind}") from None
    return text


def from_lines(cls: type[T], text: str) -> T:
    """An instance of the settings dataclass ``cls`` from :func:`to_lines`' text.

    Raises:
        ValueError: a line is not ``name=value``, names no field of ``cls``, or has a value of the wrong type.
    """
    fields = {field.name: field for field in dataclasses.fields(cls)}
    values = {}
    for line in filter(str.strip, text.splitlines()):
        name, sep, value = line.partition("=")
        if not sep or name.strip() not in fields:
            raise ValueError(f"{cls.__name__}: {line!r} is not a name=value line of one of its fields")
        values[name.strip()] = typed_value(fields[name.strip()], value)
    return cls(**values)


def check_same(name: str, fields: Iterable[dataclasses.Field]) -> None:
    """Raise when fields of one name in two dataclasses disagree on default or help text."""
    seen = {(repr(default_of(field)), help_of(field)) for field in fields}
    if len(seen) > 1:
        raise ValueError(f"setting {name!r} is declared twice with different defaults or help: {sorted(seen)}")


def require_at_least(settings: Any, minimum: int, *names: str) -> None:
    """ValueError naming the first of ``settings``' fields ``names`` that is below ``minimum``."""
    for name in names:
        if getattr(settings, name) < minimum:
            rule = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
            raise ValueError(f"{name} {rule}, got {getattr(settings, name)}")


# Settings more than one step takes: declared here once, used as ``name: type = SHARED.x()``.
def base_model_setting():
    return setting(
        DEFAULT_BASE_MODEL,
        "Base model: offline:all-MiniLM-L6-v2 (packaged with the project), "
        "a Hugging Face hub id, or a local or gs:// save_pretrained directory.",
    )


def seed_setting():
    return setting(
        42,
        "Seed of the split, the subsample, the generated sample, initialisation, batch "
        "order and the behavioural suites.",
    )


def live_model_uri_setting():
    return setting(
        "",
        "Storage URI of the model now serving (the champion): evaluate scores it on the same test "
        "split and suites, and the new model is rolled out as its canary. Empty: none yet.",
    )


def source_setting() -> Any:
    from textclf.data.formats import FORMATS  # the file formats' registry (light: no pandas at import)

    return setting(
        "sample:2000",
        f"Data: sample:N (N generated reviews); a {'/'.join(FORMATS)} file (each "
        "optionally .gz), a folder of them or a glob (data/part-*.csv.gz), local or on gs:// "
        "(gs://bucket/export/*.parquet); or hf://owner/name[:config].",
    )


def parameters_only(cls: type) -> type:
    """``cls`` without its ``LIBRARY_ONLY`` fields: for a command line that offers what a pipeline does."""
    fields = [
        (f.name, f.type, dataclasses.field(default=default_of(f), metadata=f.metadata))
        for f in pipeline_fields(cls).values()
    ]
    view = dataclasses.make_dataclass(cls.__name__, fields)
    view.__module__ = cls.__module__  # so that string annotations resolve where the class was written
    return view


def serving_backend_setting() -> Any:
    from textclf.inference.backends import backend_names  # the backends' registry
    from textclf.inference.choice import START_TIE_SPEED

    return setting(
        "auto",
        f"Backend that serves the model ({backend_names()}), the one evaluate "
        "scores the test split with and deploy pins with --backend; auto: the optimize step's choice, the "
        "fastest on its CPU within max_backend_flip_rate of fp32's labels (a torch-free one wins a tie "
        f"within {1 - START_TIE_SPEED:.0%}: its pods start sooner).",
    )


def backend_flip_rate_setting():
    return setting(
        0.005,
        "Largest share of validation texts whose label the serving backend may change against "
        "fp32 PyTorch: optimize's auto picks only within it, and the gate blocks a model whose backend "
        "exceeds it.",
    )


def _string_to_bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, yes/no, 1/0), got {value!r}")


def _choice(choices: tuple) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        for choice in choices:
            if str(choice) == value:
                return choice
        return value  # argparse then names the choices

    return parse


class SettingsParser(argparse.ArgumentParser):
    """Command-line flags of settings dataclasses, one ``--name`` (and ``--na-me``) per field with its
    default and help: what ``transformers.HfArgumentParser`` does for these dataclasses (bool with an
    optional value and ``--no_name``, ``X | None``, ``Literal`` choices), without importing
    transformers, which costs the model server about 2 s of its cold start.

    Args:
        classes: the settings dataclasses.
        kwargs: ``argparse.ArgumentParser`` options (``parents``, ``description``...).
    """

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.classes = list(classes)
        for cls in self.classes:
            hints = typing.get_type_hints(cls)
            for field in dataclasses.fields(cls):
                self._add(field, hints[field.name])

    def _add(self, field: dataclasses.Field, kind: Any) -> None:
        names = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        options = {**field.metadata, **({"required": True} if required else {"default": default_of(field)})}
        arguments = [argument for argument in typing.get_args(kind) if argument is not type(None)]
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(arguments) == 1:
            kind = arguments[0]  # X | None: the flag takes an X; None is only the default
        if typing.get_origin(kind) is typing.Literal:
            options.update(choices=typing.get_args(kind), type=_choice(typing.get_args(kind)))
        elif kind is bool:
            options.update(type=_string_to_bool, nargs="?", const=True)
        elif typing.get_origin(kind) is list:
            options["type"] = typing.get_args(kind)[0]  # one item a flag: action="append" (or nargs) collects them
        else:
            options["type"] = kind
        self.add_argument(*names, **options)
        if kind is bool and options.get("default") is True:
            self.add_argument(f"--no_{field.name}", action="store_false", dest=field.name, help=argparse.SUPPRESS)

    def parse_args_into_dataclasses(self, args: Sequence[str] | None = None) -> tuple:
        """One instance per settings class, then the namespace of the other flags (``parents``'), as
        ``HfArgumentParser`` returns them."""
        namespace = self.parse_args(args)
        instances = []
        for cls in self.classes:
            names = {field.name for field in dataclasses.fields(cls)}
            instances.append(cls(**{name: getattr(namespace, name) for name in names}))
            for name in names:
                delattr(namespace, name)
        return (*instances, namespace) if vars(namespace) else tuple(instances)
