"""Fake Vertex AI service clients: the GAPIC methods that aiplatform's PipelineJob and
PipelineJobSchedule call, patched to answer like the Vertex AI API.

They stand in for the Vertex AI API, which cannot be reached here. aiplatform itself runs
unmodified above them (request building, resource names, state handling); credentials are
``AnonymousCredentials``. The pipeline-root bucket check (``create_gcs_bucket_for_pipeline_
artifacts_if_it_does_not_exist``, which otherwise retries against GCS for ~120 s) is recorded
instead of run.
"""

from __future__ import annotations

from types import SimpleNamespace

import google.auth
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud.aiplatform import initializer
from google.cloud.aiplatform.compat.types import pipeline_job as gca_pipeline_job
from google.cloud.aiplatform.compat.types import pipeline_state as gca_pipeline_state
from google.cloud.aiplatform.compat.types import schedule as gca_schedule
from google.cloud.aiplatform.utils import gcs_utils
from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient
from google.cloud.aiplatform_v1.services.schedule_service import ScheduleServiceClient


class _Done:
    """A finished long-running operation."""

    operation = SimpleNamespace(name="operations/delete-1")

    def result(self, timeout=None):
        return None


class FakeVertex:
    def __init__(self, monkeypatch, job_states=("PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED")):
        self.created_jobs: list[dict] = []
        self.created_schedules: list[dict] = []
        self.bucket_checks: list[dict] = []
        self.calls: list[tuple[str, str]] = []
        self.schedules: dict[str, gca_schedule.Schedule] = {}
        self.job_states = list(job_states)
        self._job = None
        self._gets = 0
        fake = self

        monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), "test-project"))
        # aiplatform caches the first credentials it finds for the whole process.
        monkeypatch.setattr(initializer.global_config, "_credentials", None)
        monkeypatch.setattr(
            gcs_utils,
            "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
            lambda **kw: fake.bucket_checks.append(kw),
        )

        def create_pipeline_job(self, parent=None, pipeline_job=None, pipeline_job_id=None, **kw):
            fake.created_jobs.append(
                {"parent": parent, "pipeline_job": pipeline_job, "pipeline_job_id": pipeline_job_id}
            )
            fake._job = gca_pipeline_job.PipelineJob(pipeline_job)
            fake._job.name = f"{parent}/pipelineJobs/{pipeline_job_id}"
            fake._job.state = gca_pipeline_state.PipelineState.PIPELINE_STATE_PENDING
            return fake._job

        def get_pipeline_job(self, name=None, **kw):
            fake._gets += 1
            state = fake.job_states[min(fake._gets, len(fake.job_states)) - 1]
            job = gca_pipeline_job.PipelineJob(fake._job)
            job.state = gca_pipeline_state.PipelineState[state]
            return job

        def create_schedule(self, parent=None, schedule=None, **kw):
            fake.created_schedules.append({"parent": parent, "schedule": schedule})
            created = gca_schedule.Schedule(schedule)
            created.name = f"{parent}/schedules/{1000 + len(fake.schedules)}"
            created.state = gca_schedule.Schedule.State.ACTIVE
            fake.schedules[created.name] = created
            return created

        def get_schedule(self, name=None, **kw):
            if name not in fake.schedules:
                raise NotFound(f"Schedule {name} not found.")
            return fake.schedules[name]

        def list_schedules(self, request=None, **kw):
            return list(fake.schedules.values())

        def pause_schedule(self, name=None, **kw):
            fake.calls.append(("pause", name))
            fake.schedules[name].state = gca_schedule.Schedule.State.PAUSED

        def resume_schedule(self, name=None, catch_up=None, **kw):
            fake.calls.append(("resume", name, catch_up))
            fake.schedules[name].state = gca_schedule.Schedule.State.ACTIVE

        def delete_schedule(self, name=None, **kw):
            fake.calls.append(("delete", name))
            del fake.schedules[name]
            return _Done()

        for client, methods in (
            (PipelineServiceClient, (create_pipeline_job, get_pipeline_job)),
            (
                ScheduleServiceClient,
                (create_schedule, get_schedule, list_schedules, pause_schedule, resume_schedule, delete_schedule),
            ),
        ):
            for method in methods:
                monkeypatch.setattr(client, method.__name__, method)
