"""The Vertex AI Pipelines backend of ``submit`` and ``schedule`` (``google-cloud-aiplatform``).

Credentials are Application Default Credentials (``gcloud auth application-default login``
locally, the workload's service account in CI).
"""

from __future__ import annotations

import argparse
import contextlib

from pipelines.cloud_common import CloudCommandError, SubmittedRun, check_cron, parse_labels

SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FINISHED = frozenset({SUCCEEDED, "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_PAUSED"})
CONSOLE = "https://console.cloud.google.com/vertex-ai/locations"


@contextlib.contextmanager
def api_errors(args: argparse.Namespace):
    """Turn missing credentials or a refused Vertex AI request into one line that says which."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import DefaultCredentialsError

    try:
        yield
    except DefaultCredentialsError as error:
        raise CloudCommandError(
            "no Google Cloud credentials: run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
        ) from error
    except GoogleAPIError as error:
        raise CloudCommandError(f"Vertex AI ({args.project}, {args.region}) refused the request: {error}") from error


def _location(args: argparse.Namespace) -> dict:
    return {"project": args.project, "location": args.region}


def pipeline_job(args: argparse.Namespace, package: str, params: dict):
    """The ``aiplatform.PipelineJob`` for the package, with CMEK, labels and caching applied."""
    from google.cloud import aiplatform

    return aiplatform.PipelineJob(
        display_name=args.name or "textclf-train",
        template_path=package,
        pipeline_root=args.pipeline_root,
        parameter_values=params,
        enable_caching=False if args.no_cache else None,
        encryption_spec_key_name=args.encryption_key,
        labels=parse_labels(args.label) or None,
        **_location(args),
    )


def submit_run(args: argparse.Namespace, package: str, params: dict) -> SubmittedRun:
    job = pipeline_job(args, package, params)
    # submit() also makes sure the pipeline root's bucket exists (creating it when it can).
    job.submit(service_account=args.service_account, network=args.network)
    return SubmittedRun(
        run_id=job.resource_name,
        url=f"{CONSOLE}/{args.region}/pipelines/runs/{job.job_id}?project={args.project}",
        poll=lambda: job.state.name,
        succeeded=SUCCEEDED,
        finished=FINISHED,
    )


def create_schedule(args: argparse.Namespace, package: str, params: dict, cron: str) -> tuple[str, str]:
    """A PipelineJobSchedule: unix cron as given, at most ``--max-concurrency`` runs at once."""
    check_cron(cron)
    schedule = pipeline_job(args, package, params).create_schedule(
        cron=cron,
        display_name=args.name or "textclf-train",
        max_concurrent_run_count=args.max_concurrency,
        service_account=args.service_account,
        network=args.network,
    )
    schedule_id = schedule.resource_name.rsplit("/", 1)[-1]
    return schedule.resource_name, f"{CONSOLE}/{args.region}/pipelines/schedules/{schedule_id}?project={args.project}"


def list_schedules(args: argparse.Namespace) -> list[dict]:
    from google.cloud import aiplatform

    return [
        {"id": s.resource_name, "name": s.display_name, "cron": s.cron, "state": s.state.name}
        for s in aiplatform.PipelineJobSchedule.list(**_location(args))
    ]


def _schedule(args: argparse.Namespace, schedule_id: str):
    from google.cloud import aiplatform

    return aiplatform.PipelineJobSchedule.get(schedule_id, **_location(args))


def pause_schedule(args: argparse.Namespace, schedule_id: str) -> None:
    _schedule(args, schedule_id).pause()


def resume_schedule(args: argparse.Namespace, schedule_id: str) -> None:
    schedule = _schedule(args, schedule_id)
    # No catch-up, as on KFP: one run at the next slot rather than one per missed slot.
    # (PipelineJobSchedule.resume() drops its catch_up argument, so ask the service directly.)
    schedule.api_client.resume_schedule(name=schedule.resource_name, catch_up=False)


def delete_schedule(args: argparse.Namespace, schedule_id: str) -> None:
    _schedule(args, schedule_id).delete()
