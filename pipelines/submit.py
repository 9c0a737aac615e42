"""``python -m pipelines submit``: run the compiled pipeline on Kubeflow Pipelines or Vertex AI.

Prints the run's id and URL; with ``--wait`` it follows the run and exits 1 unless it succeeds
(2 when ``--timeout`` passes first, leaving the run going).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from pipelines.cloud_common import (
    CloudCommandError,
    add_backend_arguments,
    check_backend_arguments,
    declared_parameters,
    follow,
    parse_params,
    pipeline_package,
)


def backend(name: str):
    """The module that talks to ``name`` (``kfp`` or ``vertex``)."""
    return importlib.import_module(f"pipelines.cloud_{name}")


def prepare(args: argparse.Namespace) -> tuple[str, dict]:
    """Check the options; return the package and its typed parameters."""
    check_backend_arguments(args)
    package = pipeline_package(args)
    return package, parse_params(args.param, declared_parameters(package))


def submit(args: argparse.Namespace) -> int:
    package, params = prepare(args)
    # The client libraries print their own links; keep stdout to the lines below.
    api = backend(args.backend)
    with api.api_errors(args), contextlib.redirect_stdout(sys.stderr):
        run = api.submit_run(args, package, params)
    print(f"run id: {run.run_id}")
    print(f"run url: {run.url}")
    if not args.wait:
        return 0
    try:
        with api.api_errors(args):
            state = follow(run, timeout_s=args.timeout, poll_s=args.poll_interval)
    except TimeoutError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"run state: {state}")
    return 0 if state == run.succeeded else 1


def run_command(command, args: argparse.Namespace) -> None:
    """Run a subcommand; bad input and refused requests end as one line on stderr, status 1."""
    try:
        status = command(args)
    except CloudCommandError as error:
        sys.exit(f"{args.command}: {error}")
    sys.exit(status)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="run the pipeline on Kubeflow Pipelines or Vertex AI", description=__doc__
    )
    add_backend_arguments(parser)
    parser.add_argument("--wait", action="store_true", help="follow the run to its end; exit 1 unless it succeeds")
    parser.add_argument(
        "--timeout", type=float, default=24 * 3600, help="seconds --wait follows the run (default one day)"
    )
    parser.add_argument("--poll-interval", type=float, default=30, help="seconds between state checks with --wait")
    parser.set_defaults(func=lambda args: run_command(submit, args))
