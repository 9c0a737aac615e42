"""submit/schedule --backend vertex through the real aiplatform SDK over fake service clients.

tests/cloud/fake_vertex.py stands in for the Vertex AI API, which cannot be reached here.
"""

import pytest
import yaml

from pipelines.__main__ import main
from tests.cloud.fake_vertex import FakeVertex

LOCATION = ["--project", "my-project", "--region", "europe-west4"]


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_submit_sends_spec_parameters_and_run_settings(tiny_packages, monkeypatch, capsys):
    vertex = FakeVertex(monkeypatch)
    code, out, err = run_cli(
        [
            "submit",
            "--backend",
            "vertex",
            *LOCATION,
            "--package",
            tiny_packages["vertex"],
            "--pipeline-root",
            "gs://bucket/root",
            "--service-account",
            "runner@my-project.iam.gserviceaccount.com",
            "--network",
            "projects/123/global/networks/vpc",
            "--encryption-key",
            "projects/my-project/locations/europe-west4/keyRings/r/cryptoKeys/k",
            "--label",
            "team=ml",
            "--label",
            "trigger=manual",
            "--param",
            "epochs=2",
            "--param",
            "apply=false",
            "--param",
            "source=gs://bucket/data.parquet",
        ],
        capsys,
    )

    assert code == 0, err
    (created,) = vertex.created_jobs
    job = created["pipeline_job"]
    assert created["parent"] == "projects/my-project/locations/europe-west4"
    assert out.splitlines() == [
        f"run id: projects/my-project/locations/europe-west4/pipelineJobs/{created['pipeline_job_id']}",
        f"run url: https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/{created['pipeline_job_id']}?project=my-project",
    ]
    assert job.runtime_config.gcs_output_directory == "gs://bucket/root"
    values = job.runtime_config.parameter_values
    assert (values["epochs"], values["apply"], values["source"]) == (2, False, "gs://bucket/data.parquet")
    assert job.service_account == "runner@my-project.iam.gserviceaccount.com"
    assert job.network == "projects/123/global/networks/vpc"
    assert job.encryption_spec.kms_key_name.endswith("cryptoKeys/k")
    assert dict(job.labels) == {"team": "ml", "trigger": "manual"}
    with open(tiny_packages["vertex"]) as stream:
        assert job.pipeline_spec["root"] == yaml.safe_load(stream)["root"]
    assert vertex.bucket_checks[0]["output_artifacts_gcs_dir"] == "gs://bucket/root"


@pytest.mark.parametrize(
    "states, expected_code",
    [
        (["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"], 0),
        (["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_FAILED"], 1),
        (["PIPELINE_STATE_CANCELLED"], 1),
    ],
)
def test_wait_exits_by_how_the_run_ended(tiny_packages, monkeypatch, capsys, states, expected_code):
    FakeVertex(monkeypatch, job_states=states)
    code, out, err = run_cli(
        [
            "submit",
            "--backend",
            "vertex",
            *LOCATION,
            "--package",
            tiny_packages["vertex"],
            "--pipeline-root",
            "gs://b/r",
            "--wait",
            "--poll-interval",
            "0.01",
        ],
        capsys,
    )
    assert code == expected_code, err
    assert out.splitlines()[-1] == f"run state: {states[-1]}"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--project", "p"], "--backend vertex needs --region --pipeline-root"),
        ([*LOCATION, "--pipeline-root", "/tmp/root"], "--pipeline-root must be a gs:// URI"),
        (
            [*LOCATION, "--pipeline-root", "gs://b/r", "--host", "http://kfp"],
            "--host do(es) not apply to --backend vertex",
        ),
        ([*LOCATION, "--pipeline-root", "gs://b/r", "--label", "team"], "--label needs KEY=VALUE"),
    ],
)
def test_submit_refuses_incomplete_or_foreign_options(tiny_packages, monkeypatch, capsys, argv, message):
    vertex = FakeVertex(monkeypatch)
    code, _, _ = run_cli(["submit", "--backend", "vertex", "--package", tiny_packages["vertex"], *argv], capsys)
    assert message in str(code)
    assert vertex.created_jobs == []


def test_schedule_lifecycle(tiny_packages, monkeypatch, capsys):
    vertex = FakeVertex(monkeypatch)
    base = ["--backend", "vertex", *LOCATION]
    code, out, err = run_cli(
        [
            "schedule",
            *base,
            "--package",
            tiny_packages["vertex"],
            "--pipeline-root",
            "gs://bucket/root",
            "--cron",
            "0 3 * * 1",
            "--max-concurrency",
            "1",
            "--name",
            "weekly",
            "--param",
            "epochs=4",
            "--service-account",
            "runner@my-project.iam.gserviceaccount.com",
        ],
        capsys,
    )
    assert code == 0, err
    (created,) = vertex.created_schedules
    schedule = created["schedule"]
    assert schedule.cron == "0 3 * * 1"  # Vertex takes the 5-field cron as is
    assert schedule.max_concurrent_run_count == 1 and schedule.display_name == "weekly"
    request = schedule.create_pipeline_job_request
    assert request.parent == "projects/my-project/locations/europe-west4"
    assert request.pipeline_job.runtime_config.parameter_values["epochs"] == 4
    assert request.pipeline_job.runtime_config.gcs_output_directory == "gs://bucket/root"
    assert request.pipeline_job.service_account == "runner@my-project.iam.gserviceaccount.com"
    name = "projects/my-project/locations/europe-west4/schedules/1000"
    assert out.splitlines() == [
        f"schedule id: {name}",
        "schedule url: https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/schedules/1000?project=my-project",
    ]

    code, out, err = run_cli(["schedule", "list", *base], capsys)
    assert code == 0, err
    assert out.splitlines() == [f"{name}\tweekly\t0 3 * * 1\tACTIVE"]
    assert run_cli(["schedule", "pause", name, *base], capsys)[0] == 0
    assert vertex.schedules[name].state.name == "PAUSED"
    assert run_cli(["schedule", "resume", name, *base], capsys)[0] == 0
    assert vertex.calls[-1] == ("resume", name, False)  # no catch-up
    assert run_cli(["schedule", "delete", name, *base], capsys)[0] == 0
    assert vertex.schedules == {}


def test_schedule_refuses_bad_cron_before_any_request(tiny_packages, monkeypatch, capsys):
    vertex = FakeVertex(monkeypatch)
    code, _, _ = run_cli(
        [
            "schedule",
            "--backend",
            "vertex",
            *LOCATION,
            "--package",
            tiny_packages["vertex"],
            "--pipeline-root",
            "gs://b/r",
            "--cron",
            "0 0 3 * * 1",
        ],
        capsys,
    )
    assert "cron needs 5 fields" in str(code)
    assert vertex.created_schedules == [] and vertex.created_jobs == []


def test_missing_credentials_and_refusals_are_one_line(tiny_packages, monkeypatch, capsys):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud.aiplatform import initializer

    FakeVertex(monkeypatch)
    code, _, _ = run_cli(
        [
            "schedule",
            "pause",
            "projects/my-project/locations/europe-west4/schedules/404",
            "--backend",
            "vertex",
            *LOCATION,
        ],
        capsys,
    )
    assert "Vertex AI (my-project, europe-west4) refused the request: 404 Schedule" in str(code)

    def no_credentials(*args, **kwargs):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    monkeypatch.setattr(initializer.global_config, "_credentials", None)
    code, _, _ = run_cli(
        [
            "submit",
            "--backend",
            "vertex",
            *LOCATION,
            "--package",
            tiny_packages["vertex"],
            "--pipeline-root",
            "gs://b/r",
        ],
        capsys,
    )
    assert "no Google Cloud credentials: run `gcloud auth application-default login`" in str(code)
