"""Which backend serves a model: the optimize step's measurements (``serving.json``), the rule that
picks from them, and how a requested name (or ``auto``) resolves.

``serving.json`` sits in the Model directory beside the artifacts it describes::

    {"format": "textclf-serving/v1", "backend": "onnx-int8", "rule": "...", "reason": "...",
     "reference": "torch", "max_flip_rate": 0.005, "measured_on": {"cpu", "threads", "features"},
     "split": "validation",
     "backends": {"torch": {"artifact": null, "texts", "label_flips", "flip_rate",
                            "max_probability_change", "mean_probability_change", "accuracy",
                            "texts_per_second", "seconds"},
                  "onnx-int8": {...}, "torch-bf16": {"skipped": "no native bf16 ..."}}}

The rule (``auto``): of the backends measured on the whole validation split, those whose labels
differ from fp32 PyTorch's on at most ``max_flip_rate`` of the texts (the gate's bound, so that
``auto`` never picks a backend the gate would refuse), the fastest on the optimize step's CPU.
fp32 PyTorch always qualifies: it is the reference. A backend the step stopped short of every
text (``complete``: false: over the bound early, or slower than one that passed) never qualifies.
Where the fastest needs torch and a backend that does not (ONNX Runtime) is within
``1 - START_TIE_SPEED`` of its speed, the torch-free one serves: the two are tied within the
measurement's noise (torch fp32 and ONNX fp32 are, on AVX2 CPUs), and without torch a new pod, or
one scaled up from zero, is ready about 8 s sooner (docs/benchmarks-serving.md, cold start).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from textclf.inference.backends import AUTO, BACKENDS, REFERENCE, backend_kind

log = logging.getLogger(__name__)

SERVING_FILE = "serving.json"
SERVING_FORMAT = "textclf-serving/v1"
# A torch-free backend at least this share of the fastest's speed serves instead of it: a tie within
# the measurement's noise goes to the backend whose pods start without importing torch.
START_TIE_SPEED = 0.95
RULE = (
    "the fastest backend on the optimize step's CPU among those whose validation labels differ from fp32 "
    "PyTorch's on at most max_backend_flip_rate of the texts; one that starts without torch wins a tie "
    f"(at least {START_TIE_SPEED:.0%} of the fastest's speed)"
)


def read_serving_file(model_dir: str | Path) -> dict | None:
    """The Model directory's ``serving.json``, or None when it has none (not optimized)."""
    path = Path(model_dir) / SERVING_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_serving_file(model_dir: str | Path, content: dict) -> Path:
    path = Path(model_dir) / SERVING_FILE
    path.write_text(json.dumps({"format": SERVING_FORMAT, **content}, indent=2))
    return path


def qualifies(measured: dict, max_flip_rate: float) -> bool:
    """Measured on every text (a finite speed and flip rate, not stopped short) and within the bound of label flips."""
    rate, speed = measured.get("flip_rate"), measured.get("texts_per_second")
    return (
        isinstance(rate, (int, float))
        and isinstance(speed, (int, float))
        and math.isfinite(rate)
        and math.isfinite(speed)
        and rate <= max_flip_rate
        and measured.get("complete", True)
    )


def needs_torch(name: str) -> bool:
    return name in BACKENDS and BACKENDS[name].needs_torch


def may_win(name: str, speed: float, fastest_speed: float) -> bool:
    """Whether :data:`RULE` can pick backend ``name`` at ``speed`` over a torch backend at ``fastest_speed``."""
    return speed > fastest_speed or (not needs_torch(name) and speed >= START_TIE_SPEED * fastest_speed)


def choose(backends: dict[str, dict], max_flip_rate: float) -> tuple[str, str]:
    """(the backend :data:`RULE` picks from the measurements, why), in words naming the numbers."""
    fit = {name: m for name, m in backends.items() if qualifies(m, max_flip_rate)}
    if REFERENCE not in fit:
        raise ValueError(f"the reference backend {REFERENCE!r} was not measured: nothing to choose from")
    speed = {name: fit[name]["texts_per_second"] for name in fit}
    ranked = sorted(fit, key=lambda name: -speed[name])
    speeds = ", ".join(f"{name} {speed[name]:.1f}" for name in ranked)
    over = [
        f"{name} ({m['label_flips']} flips, {100 * m['flip_rate']:.2f}%)"
        for name, m in backends.items()
        if name not in fit and "flip_rate" in m
    ]
    within = f"of the backends within {100 * max_flip_rate:.2f}% validation label flips against fp32"
    fastest = ranked[0]
    tied = [name for name in ranked if not needs_torch(name) and may_win(name, speed[name], speed[fastest])]
    if needs_torch(fastest) and tied:
        chosen = tied[0]
        why = (
            f"within {1 - START_TIE_SPEED:.0%} of the fastest, {fastest} (texts/s: {speeds}), "
            f"and it starts without torch, {within}"
        )
    else:
        chosen, why = fastest, f"the fastest (texts/s: {speeds}) {within}"
    return chosen, f"{chosen}: {why}" + (f"; over the bound: {', '.join(over)}" if over else "")


def resolve_backend(model_dir: str | Path, requested: str) -> str:
    """The backend a process runs: ``requested``, or for ``auto`` the optimize step's choice
    (``serving.json``), or fp32 PyTorch for a Model directory that was never optimized."""
    if requested != AUTO:
        return backend_kind(requested).name
    measured = read_serving_file(model_dir)
    if measured is None:
        log.warning(
            "%s has no %s (the optimize step never ran on it): backend auto serves %s",
            model_dir,
            SERVING_FILE,
            REFERENCE,
        )
        return REFERENCE
    name = measured.get("backend")
    if name not in BACKENDS:
        raise ValueError(
            f"{Path(model_dir) / SERVING_FILE} names backend {name!r}, which this code does not have "
            f"({', '.join(BACKENDS)})"
        )
    return name


def measurement(model_dir: str | Path, name: str) -> dict | None:
    """What the optimize step measured of backend ``name`` on this model (None: never measured)."""
    measured = read_serving_file(model_dir) or {}
    entry = measured.get("backends", {}).get(name)
    return entry if entry and "flip_rate" in entry else None


def served_backend(model_uri: str) -> str:
    """The backend a deployed model serves with: its ``serving.json``'s choice (local or a URI such as
    ``gs://``), or fp32 PyTorch for a model from before the optimize step (it needs no artifact)."""
    from textclf.platform import storage

    try:
        name = json.loads(storage.read_text(storage.join(model_uri, SERVING_FILE))).get("backend")
    except FileNotFoundError:
        return REFERENCE
    return backend_kind(name).name


def pinned_backends(
    model_dir: str | Path, requested: str, metrics: dict, live_model_uri: str = "", gpus: int = 0
) -> tuple[str, str]:
    """(the backend the deploy step pins for the new model, the live model's): ``requested`` resolved with
    the model's ``serving.json``, which must be the backend evaluate scored (``metrics.json``), or the
    gate would have passed numbers of another backend than the one that serves.

    Raises:
        ValueError: the resolved backend is not the one evaluate scored, or predictor pods with
            ``gpus`` would serve a backend that runs on the CPU.
    """
    backend = resolve_backend(model_dir, requested)
    if gpus and not backend_kind(backend).needs_torch:
        raise ValueError(
            f"predictor pods with {gpus} GPU(s) would serve {backend!r}, which runs on the CPU: set "
            "serving_backend to torch or torch-bf16 (evaluate and deploy share it) to serve on the GPU"
        )
    scored = (metrics.get("serving") or {}).get("backend")
    if scored != backend:
        raise ValueError(
            f"serving_backend {requested!r} resolves to {backend!r} for {model_dir}, but evaluate scored "
            f"{scored!r}: the gate decided on another backend's numbers; run evaluate and deploy with "
            "the same serving_backend"
        )
    return backend, served_backend(live_model_uri) if live_model_uri else REFERENCE
