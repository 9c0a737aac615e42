"""``python -m pipelines schedule``: retrain on a cron on Kubeflow Pipelines or Vertex AI.

``schedule --cron "0 3 * * 1"`` (or ``schedule create ...``) creates a schedule; ``schedule list``,
``schedule pause ID``, ``schedule resume ID`` and ``schedule delete ID`` manage them.

The cron is the usual 5 fields (minute hour day-of-month month day-of-week), in UTC. Vertex
takes it as is; KFP's scheduler wants a leading seconds field, which is added for you
(``0 3 * * 1`` becomes ``0 0 3 * * 1``). Both backends start at most ``--max-concurrency`` runs
at once and never catch up on missed slots (after a pause, one run, not a backlog). Steps
whose inputs did not change (ingest, tokenize on the same data) are cache hits.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from pipelines.cloud_common import CloudCommandError, add_backend_arguments, check_backend_arguments
from pipelines.submit import backend, prepare, run_command

ACTIONS = ("create", "list", "pause", "resume", "delete")


def schedule(args: argparse.Namespace) -> int:
    with backend(args.backend).api_errors(args):
        return _schedule(args)


def _schedule(args: argparse.Namespace) -> int:
    if args.action == "create":
        if not args.cron:
            raise CloudCommandError("creating a schedule needs --cron")
        if args.schedule_id:
            raise CloudCommandError(f"create takes no schedule id, got {args.schedule_id!r}")
        if args.max_concurrency < 1:
            raise CloudCommandError(f"--max-concurrency must be at least 1, got {args.max_concurrency}")
        package, params = prepare(args)
        with contextlib.redirect_stdout(sys.stderr):
            schedule_id, url = backend(args.backend).create_schedule(args, package, params, args.cron)
        print(f"schedule id: {schedule_id}")
        print(f"schedule url: {url}")
        return 0
    check_backend_arguments(args, starts_runs=False)
    if args.action == "list":
        for item in backend(args.backend).list_schedules(args):
            print(f"{item['id']}\t{item['name']}\t{item['cron']}\t{item['state']}")
        return 0
    if not args.schedule_id:
        raise CloudCommandError(f"{args.action} needs the schedule id (see: schedule list)")
    getattr(backend(args.backend), f"{args.action}_schedule")(args, args.schedule_id)
    print(f"{args.action}: {args.schedule_id}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schedule",
        help="create, list, pause, resume or delete recurring runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", nargs="?", choices=ACTIONS, default="create", help="what to do (default create)")
    parser.add_argument("schedule_id", nargs="?", help="schedule to pause, resume or delete")
    add_backend_arguments(parser)
    parser.add_argument("--cron", help='5-field unix cron in UTC, e.g. "0 3 * * 1" (Mondays 03:00)')
    parser.add_argument("--max-concurrency", type=int, default=1, help="most runs of this schedule at once (default 1)")
    parser.set_defaults(func=lambda args: run_command(schedule, args))
