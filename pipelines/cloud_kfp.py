"""The Kubeflow Pipelines backend of ``submit`` and ``schedule`` (``kfp.Client``, KFP API v2beta1).

Authentication is kfp.Client's own: none for a port-forward (``kubectl port-forward -n kubeflow
svc/ml-pipeline-ui 8080:80``), IAP through ``KF_PIPELINES_IAP_OAUTH2_CLIENT_ID`` and friends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import warnings

from pipelines.cloud_common import DEFAULT_EXPERIMENT, CloudCommandError, SubmittedRun, kfp_cron

FINISHED = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
# Enough to list every schedule of a project; the loop stops there whatever the server says.
MAX_LIST_PAGES = 20


def client(args: argparse.Namespace):
    import kfp

    if not args.host and not os.environ.get("KF_PIPELINES_ENDPOINT"):
        raise CloudCommandError("--backend kfp needs --host (or KF_PIPELINES_ENDPOINT)")
    with warnings.catch_warnings():
        # Its only warning says it needs KFP >= 2.0.0-beta.2, on every call; the README says so once.
        warnings.simplefilter("ignore", FutureWarning)
        # kfp.Client treats "kubeflow" as "no namespace given" and then asks the server.
        return kfp.Client(host=args.host, namespace=args.namespace or "kubeflow")


@contextlib.contextmanager
def api_errors(args: argparse.Namespace):
    """Turn an unreachable or refusing KFP API into one line that says which and where."""
    import kfp_server_api
    import urllib3

    host = args.host or os.environ.get("KF_PIPELINES_ENDPOINT")
    try:
        yield
    except urllib3.exceptions.HTTPError as error:
        raise CloudCommandError(
            f"cannot reach the KFP API at {host} ({getattr(error, 'reason', error)}); is the port-forward running?"
        ) from error
    except kfp_server_api.ApiException as error:
        raise CloudCommandError(
            f"the KFP API at {host} answered {error.status} {error.reason}: {(error.body or '').strip()}"
        ) from error


def _url(kfp_client, path: str) -> str:
    # The same UI prefix kfp.Client prints its own links with (it honours KF_PIPELINES_UI_ENDPOINT).
    return f"{kfp_client._get_url_prefix()}/#/{path}"


def _caching(args: argparse.Namespace) -> bool | None:
    # None keeps the compiled per-step settings (ingest/tokenize cached, gate/deploy not).
    return False if args.no_cache else None


def _experiment_id(kfp_client, args: argparse.Namespace) -> str:
    return kfp_client.create_experiment(
        name=args.experiment or DEFAULT_EXPERIMENT, namespace=args.namespace
    ).experiment_id


def submit_run(args: argparse.Namespace, package: str, params: dict) -> SubmittedRun:
    kfp_client = client(args)
    run = kfp_client.run_pipeline(
        experiment_id=_experiment_id(kfp_client, args),
        job_name=args.name or "textclf-train",
        pipeline_package_path=package,
        params=params,
        pipeline_root=args.pipeline_root,
        enable_caching=_caching(args),
        service_account=args.service_account,
    )
    return SubmittedRun(
        run_id=run.run_id,
        url=_url(kfp_client, f"runs/details/{run.run_id}"),
        poll=lambda: kfp_client.get_run(run.run_id).state,
        succeeded="SUCCEEDED",
        finished=FINISHED,
    )


def create_schedule(args: argparse.Namespace, package: str, params: dict, cron: str) -> tuple[str, str]:
    """A recurring run: KFP's 6-field cron, at most ``--max-concurrency`` runs, no catch-up."""
    kfp_client = client(args)
    recurring = kfp_client.create_recurring_run(
        experiment_id=_experiment_id(kfp_client, args),
        job_name=args.name or "textclf-train",
        cron_expression=kfp_cron(cron),
        max_concurrency=args.max_concurrency,
        # After a pause or an outage, run once, not once per missed slot.
        no_catchup=True,
        params=params,
        pipeline_package_path=package,
        pipeline_root=args.pipeline_root,
        enable_caching=_caching(args),
        service_account=args.service_account,
    )
    return recurring.recurring_run_id, _url(kfp_client, f"recurringrun/details/{recurring.recurring_run_id}")


def list_schedules(args: argparse.Namespace) -> list[dict]:
    kfp_client = client(args)
    schedules, token = [], ""
    for _ in range(MAX_LIST_PAGES):
        page = kfp_client.list_recurring_runs(page_token=token, page_size=100, namespace=args.namespace)
        for recurring in page.recurring_runs or []:
            cron = recurring.trigger.cron_schedule.cron if recurring.trigger and recurring.trigger.cron_schedule else ""
            schedules.append(
                {
                    "id": recurring.recurring_run_id,
                    "name": recurring.display_name,
                    "cron": cron,
                    "state": recurring.status,
                }
            )
        token = page.next_page_token
        if not token:
            break
    return schedules


def pause_schedule(args: argparse.Namespace, schedule_id: str) -> None:
    client(args).disable_recurring_run(schedule_id)


def resume_schedule(args: argparse.Namespace, schedule_id: str) -> None:
    client(args).enable_recurring_run(schedule_id)


def delete_schedule(args: argparse.Namespace, schedule_id: str) -> None:
    client(args).delete_recurring_run(schedule_id)
