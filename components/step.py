"""The kfp side of a pipeline step: its image, and its parameters' defaults and help from the settings.

A step's settings are declared once, as a dataclass in the core package (``textclf``). The op
function must still name each parameter with its type, because kfp builds the component from
the function's source and signature; :func:`step` checks those names and types against the
settings (a forgotten or misspelt parameter fails at import) and fills in the defaults and the
``Args:`` text from the settings, which the Kubeflow / Vertex UI shows.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping

from kfp.dsl.types import type_annotations

from textclf.images import COMPONENT_IMAGE, TRAINER_IMAGE
from textclf.settings import default_of, help_of, pipeline_fields


def _is_artifact(annotation) -> bool:
    return type_annotations.is_artifact_wrapped_in_Input(annotation) or type_annotations.is_artifact_wrapped_in_Output(
        annotation
    )


def _type_name(annotation) -> str:
    return annotation if isinstance(annotation, str) else annotation.__name__


def _check(func: Callable, fields: Mapping[str, dataclasses.Field], wired: Mapping[str, str]) -> None:
    params = {name: p for name, p in inspect.signature(func).parameters.items() if not _is_artifact(p.annotation)}
    missing, unknown = fields.keys() - params.keys(), params.keys() - fields.keys() - wired.keys()
    if missing or unknown:
        raise TypeError(
            f"{func.__name__}: parameters must be the settings' fields; missing {sorted(missing)}, "
            f"not settings {sorted(unknown)}"
        )
    for name, field in fields.items():
        if _type_name(params[name].annotation) != _type_name(field.type):
            raise TypeError(
                f"{func.__name__}: parameter {name} is {params[name].annotation}, the setting is {field.type}"
            )


def _documented(doc: str, texts: Mapping[str, str]) -> str:
    """``doc`` with one ``Args:`` line per entry of ``texts`` added (Google style, as kfp parses it)."""
    head, _, artifacts = inspect.cleandoc(doc or "").partition("Args:\n")
    lines = [f"    {name}: {text}" for name, text in texts.items()]
    return head.rstrip() + "\n\nArgs:\n" + "\n".join(lines) + ("\n" + artifacts if artifacts else "")


def step(*settings: type, wired: Mapping[str, tuple[str, object]] | None = None, image: str = COMPONENT_IMAGE):
    """Make a kfp component of a thin step function whose parameters are the fields of ``settings``.

    Args:
        settings: the dataclasses whose pipeline fields are the step's parameters.
        wired: parameters fed by another step's output rather than the pipeline: name -> (help, default).
        image: the container image the step runs in.
    """
    wired = dict(wired or {})

    def decorate(func: Callable):
        # Inside a running task kfp hides ``kfp.dsl.component`` (_KFP_RUNTIME), and the task imports
        # the step's module, so the decorator is taken from its own module.
        from kfp.dsl.component_decorator import component

        fields = pipeline_fields(*settings)
        _check(func, fields, wired)
        signature = inspect.signature(func)
        # Keyword-only, so that defaulted parameters may come before the output artifacts.
        defaults = {
            **{name: default_of(field) for name, field in fields.items()},
            **{n: d for n, (_, d) in wired.items()},
        }
        func.__signature__ = signature.replace(
            parameters=[
                p.replace(kind=inspect.Parameter.KEYWORD_ONLY, default=defaults.get(p.name, p.default))
                for p in signature.parameters.values()
            ]
        )
        func.settings = settings  # for the tests that check the pipeline against the settings
        func.wired = tuple(wired)  # fed by the pipeline's wiring, not pipeline parameters
        func.__doc__ = _documented(
            func.__doc__, {**{n: help_of(f) for n, f in fields.items()}, **{n: h for n, (h, _) in wired.items()}}
        )
        # The images carry kfp and this project; installing kfp at task start would only cost time.
        return component(func, base_image=image, install_kfp_package=False)

    return decorate


def gpu_step(*settings: type, **kwargs):
    """:func:`step` in the trainer (CUDA) image."""
    return step(*settings, image=TRAINER_IMAGE, **kwargs)
