"""What ``submit`` and ``schedule`` share: backend options, the compiled package, typed
``--param`` values (``run`` parses its ``--param`` here too), cron checking and following a run
to its end."""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from textclf.platform import storage

logger = logging.getLogger(__name__)

# Backend -> the compile target whose YAML it runs.
BACKEND_TARGETS = {"kfp": "kubeflow", "vertex": "vertex"}
DEFAULT_EXPERIMENT = "textclf"


class CloudCommandError(Exception):
    """Bad input or a refused request, reported to the user as one line and exit status 1."""


@dataclass
class SubmittedRun:
    """A run the backend accepted: its id, where to watch it, and how to ask for its state."""

    run_id: str
    url: str
    poll: Callable[[], str]
    succeeded: str
    finished: frozenset[str]


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say where a pipeline runs (both backends) and with what."""
    parser.add_argument(
        "--backend",
        choices=sorted(BACKEND_TARGETS),
        required=True,
        help="kfp (Kubeflow Pipelines on GKE) or vertex (Vertex AI Pipelines)",
    )
    parser.add_argument(
        "--package", help="compiled pipeline YAML (default build/pipeline-<target>.yaml, compiled when missing)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter; repeatable; typed from the pipeline's declaration",
    )
    parser.add_argument("--name", help="display name of the run or schedule (default: the pipeline name)")
    parser.add_argument(
        "--pipeline-root", help="where artifacts go, e.g. gs://BUCKET/pipeline-root (required for vertex)"
    )
    parser.add_argument(
        "--service-account",
        help="KFP: Kubernetes service account of the run's pods; Vertex: GCP service account e-mail",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="rerun every step (default: the compiled caching settings)"
    )
    kfp = parser.add_argument_group("kfp backend")
    kfp.add_argument("--host", help="KFP API endpoint, e.g. http://localhost:8080 (default: $KF_PIPELINES_ENDPOINT)")
    kfp.add_argument("--namespace", help="Kubeflow profile namespace (multi-user deployments)")
    kfp.add_argument(
        "--experiment", default=DEFAULT_EXPERIMENT, help="experiment the run belongs to (created when missing)"
    )
    vertex = parser.add_argument_group("vertex backend")
    vertex.add_argument("--project", help="GCP project id")
    vertex.add_argument("--region", help="Vertex AI region, e.g. europe-west4")
    vertex.add_argument("--network", help="VPC to peer with: projects/NUMBER/global/networks/NAME")
    vertex.add_argument("--encryption-key", help="CMEK: projects/P/locations/R/keyRings/K/cryptoKeys/KEY")
    vertex.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="Vertex label; repeatable")


def check_backend_arguments(args: argparse.Namespace, starts_runs: bool = True) -> None:
    """Refuse options that the chosen backend needs but lacks, or does not understand.

    Args:
        args: The parsed options.
        starts_runs: The command creates runs (submit, schedule create), so Vertex needs a
            pipeline root; listing or pausing schedules does not.
    """
    if args.backend == "vertex":
        needed = ("project", "region", "pipeline-root") if starts_runs else ("project", "region")
        missing = [f"--{name}" for name in needed if not getattr(args, name.replace("-", "_"))]
        if missing:
            raise CloudCommandError(f"--backend vertex needs {' '.join(missing)}")
        if args.pipeline_root and not storage.is_gcs(args.pipeline_root):  # Vertex writes artifacts to GCS only
            raise CloudCommandError(f"--pipeline-root must be a gs:// URI for vertex, got {args.pipeline_root!r}")
        foreign = [flag for flag, value in (("--host", args.host), ("--namespace", args.namespace)) if value]
    else:
        foreign = [
            flag
            for flag, value in (
                ("--project", args.project),
                ("--region", args.region),
                ("--network", args.network),
                ("--encryption-key", args.encryption_key),
                ("--label", args.label),
            )
            if value
        ]
    if foreign:
        raise CloudCommandError(f"{' '.join(foreign)} do(es) not apply to --backend {args.backend}")


def pipeline_package(args: argparse.Namespace) -> str:
    """The compiled YAML for the backend: ``--package``, or the default path (compiled if missing)."""
    if args.package:
        if not Path(args.package).is_file():
            raise CloudCommandError(f"no pipeline package at {args.package}")
        return args.package
    from pipelines.compile import compile_pipeline, default_output

    target = BACKEND_TARGETS[args.backend]
    path = default_output(target)
    if not Path(path).is_file():
        logger.info("%s is missing: compiling the %s target", path, target)
        compile_pipeline(target, path)
    return path


def declared_parameters(package: str) -> dict[str, str]:
    """Pipeline parameter name -> KFP parameter type, from the package's pipeline spec."""
    with open(package, encoding="utf-8") as stream:
        spec = next(yaml.safe_load_all(stream))  # the second document (if any) is the platform spec
    if not isinstance(spec, dict) or "root" not in spec:
        raise CloudCommandError(f"{package} is not a compiled pipeline (no root)")
    parameters = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return {name: declaration["parameterType"] for name, declaration in parameters.items()}


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _typed(name: str, value: str, kind: str):
    try:
        if kind == "NUMBER_INTEGER":
            return int(value)
        if kind == "NUMBER_DOUBLE":
            return float(value)
        if kind == "BOOLEAN":
            return _BOOLEANS[value.lower()]
        if kind in ("LIST", "STRUCT"):
            parsed = json.loads(value)
            if not isinstance(parsed, list if kind == "LIST" else dict):
                raise ValueError(kind)
            return parsed
    except (ValueError, KeyError) as error:
        raise CloudCommandError(f"--param {name}={value!r}: not a valid {kind}") from error
    return value


def parse_params(pairs: list[str], declared: dict[str, str]) -> dict:
    """``["epochs=2", "source=gs://b/x.csv"]`` -> ``{"epochs": 2, "source": "gs://b/x.csv"}``.

    Values are converted to the type the pipeline declares, so a typo fails here, not hours
    later in the cluster.
    """
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CloudCommandError(f"--param needs NAME=VALUE, got {pair!r}")
        if name not in declared:
            raise CloudCommandError(f"the pipeline has no parameter {name!r}; it has: {', '.join(sorted(declared))}")
        params[name] = _typed(name, value, declared[name])
    return params


def parse_labels(pairs: list[str]) -> dict[str, str]:
    """``["team=ml"]`` -> ``{"team": "ml"}`` (Vertex checks the label rules itself)."""
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CloudCommandError(f"--label needs KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


# Unix cron, 5 fields, with the bounds of each; names (JAN, MON) are accepted by both backends.
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 6))
_CRON_TOKEN = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")


def check_cron(cron: str) -> list[str]:
    """Check a 5-field unix cron (minute hour day-of-month month day-of-week); return its fields.

    Both backends read the fields the same way once KFP gets its seconds field; ``7`` for
    Sunday is refused because KFP's parser only knows ``0``.
    """
    fields = cron.split()
    if len(fields) != 5:
        raise CloudCommandError(
            f"cron needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)} in {cron!r}"
        )
    for text, (what, low, high) in zip(fields, _CRON_FIELDS):
        for token in text.split(","):
            match = _CRON_TOKEN.match(token)
            if not match:
                raise CloudCommandError(f"cron {what} field {text!r} is not valid")
            numbers = [int(n) for n in re.findall(r"(?<![/0-9])[0-9]+", match.group(1))]
            if any(not low <= n <= high for n in numbers):
                raise CloudCommandError(f"cron {what} field {text!r} is outside {low}-{high}")
    return fields


def kfp_cron(cron: str) -> str:
    """The 6-field cron KFP's scheduler wants (a leading seconds field) for a 5-field cron."""
    return " ".join(["0", *check_cron(cron)])


def follow(run: SubmittedRun, timeout_s: float, poll_s: float) -> str:
    """Poll ``run`` until it finishes; log each state change with the time spent.

    Raises:
        TimeoutError: Still not finished after ``timeout_s``.
    """
    started = time.monotonic()
    last = None
    while True:
        state = run.poll()
        elapsed = time.monotonic() - started
        if state != last:
            logger.info("run %s: %s after %.0f s", run.run_id, state, elapsed)
            last = state
        if state in run.finished:
            return state
        if elapsed > timeout_s:
            raise TimeoutError(
                f"run {run.run_id} is still {state} after {timeout_s:.0f} s; it keeps running: {run.url}"
            )
        time.sleep(poll_s)
