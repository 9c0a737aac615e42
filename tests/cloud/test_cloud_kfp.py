"""submit/schedule --backend kfp through the real kfp.Client against a fake KFP API server.

The fake (tests/cloud/fake_kfp.py) stands in for the KFP API server, which needs a Kubernetes
cluster that cannot run here; everything from argparse to the HTTP request is the real code.
"""

import pytest
import yaml

from pipelines.__main__ import main
from tests.cloud.fake_kfp import FakeKfp


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_submit_posts_spec_platform_spec_and_typed_parameters(tiny_packages, capsys):
    with FakeKfp() as kfp_api:
        code, out, err = run_cli(
            [
                "submit",
                "--backend",
                "kfp",
                "--host",
                kfp_api.url,
                "--package",
                tiny_packages["kubeflow"],
                "--experiment",
                "nightly",
                "--namespace",
                "team-ml",
                "--service-account",
                "pipeline-runner",
                "--pipeline-root",
                "gs://bucket/root",
                "--name",
                "retrain",
                "--param",
                "source=gs://bucket/data/reviews.csv",
                "--param",
                "epochs=2",
                "--param",
                "learning_rate=3e-5",
                "--param",
                "apply=true",
            ],
            capsys,
        )

    assert code == 0, err
    assert out.splitlines() == ["run id: run-1", f"run url: {kfp_api.url}/#/runs/details/run-1"]
    (experiment,) = kfp_api.posted("/experiments")
    assert experiment == {"display_name": "nightly", "namespace": "team-ml"}
    (run,) = kfp_api.posted("/runs")
    assert run["experiment_id"] == "exp-1" and run["display_name"] == "retrain"
    assert run["service_account"] == "pipeline-runner"
    assert run["runtime_config"] == {
        "pipeline_root": "gs://bucket/root",
        "parameters": {"source": "gs://bucket/data/reviews.csv", "epochs": 2, "learning_rate": 3e-5, "apply": True},
    }
    with open(tiny_packages["kubeflow"]) as stream:
        spec, platform = yaml.safe_load_all(stream)
    assert run["pipeline_spec"]["pipeline_spec"] == spec
    assert run["pipeline_spec"]["platform_spec"] == platform  # the secret reference travels with the run
    # --no-cache not given: the compiled per-step caching is kept.
    assert all(
        t.get("cachingOptions", {}).get("enableCache", True)
        for t in run["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"].values()
    )


def test_no_cache_turns_caching_off_for_every_step(tiny_packages, capsys):
    with FakeKfp() as kfp_api:
        code, _, err = run_cli(
            ["submit", "--backend", "kfp", "--host", kfp_api.url, "--package", tiny_packages["kubeflow"], "--no-cache"],
            capsys,
        )
    assert code == 0, err
    (run,) = kfp_api.posted("/runs")
    tasks = run["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"].values()
    assert [t["cachingOptions"].get("enableCache", False) for t in tasks] == [False]


@pytest.mark.parametrize(
    "states, expected_code, expected_state",
    [
        (["PENDING", "RUNNING", "SUCCEEDED"], 0, "SUCCEEDED"),
        (["RUNNING", "FAILED"], 1, "FAILED"),
        (["RUNNING", "CANCELED"], 1, "CANCELED"),
    ],
)
def test_wait_follows_the_run_and_exits_by_its_end(tiny_packages, capsys, states, expected_code, expected_state):
    with FakeKfp(run_states=states) as kfp_api:
        code, out, err = run_cli(
            [
                "submit",
                "--backend",
                "kfp",
                "--host",
                kfp_api.url,
                "--package",
                tiny_packages["kubeflow"],
                "--wait",
                "--poll-interval",
                "0.01",
            ],
            capsys,
        )
    assert code == expected_code, err
    assert out.splitlines()[-1] == f"run state: {expected_state}"
    assert sum(r["method"] == "GET" and r["path"] == "/apis/v2beta1/runs/run-1" for r in kfp_api.requests) == len(
        states
    )


def test_wait_gives_up_after_the_timeout_and_says_the_run_goes_on(tiny_packages, capsys):
    with FakeKfp(run_states=["RUNNING"]) as kfp_api:
        code, _, err = run_cli(
            [
                "submit",
                "--backend",
                "kfp",
                "--host",
                kfp_api.url,
                "--package",
                tiny_packages["kubeflow"],
                "--wait",
                "--timeout",
                "0.05",
                "--poll-interval",
                "0.01",
            ],
            capsys,
        )
    assert code == 2
    assert "still RUNNING" in err and "runs/details/run-1" in err


@pytest.mark.parametrize(
    "param, message",
    [
        ("epochs=two", "--param epochs='two': not a valid NUMBER_INTEGER"),
        ("apply=maybe", "not a valid BOOLEAN"),
        (
            "epoch=2",
            "the pipeline has no parameter 'epoch'; it has: apply, epochs, learning_rate, source, wandb_project",
        ),
        ("epochs", "--param needs NAME=VALUE"),
    ],
)
def test_bad_params_fail_before_any_request(tiny_packages, capsys, param, message):
    with FakeKfp() as kfp_api:
        code, _, err = run_cli(
            [
                "submit",
                "--backend",
                "kfp",
                "--host",
                kfp_api.url,
                "--package",
                tiny_packages["kubeflow"],
                "--param",
                param,
            ],
            capsys,
        )
    assert code != 0 and message in str(code) + err
    assert kfp_api.requests == []


def test_kfp_refuses_vertex_options(tiny_packages, capsys):
    code, _, _ = run_cli(
        [
            "submit",
            "--backend",
            "kfp",
            "--host",
            "http://127.0.0.1:9",
            "--package",
            tiny_packages["kubeflow"],
            "--region",
            "europe-west4",
        ],
        capsys,
    )
    assert "--region do(es) not apply to --backend kfp" in str(code)


def test_schedule_create_converts_cron_and_never_catches_up(tiny_packages, capsys):
    with FakeKfp() as kfp_api:
        code, out, err = run_cli(
            [
                "schedule",
                "--backend",
                "kfp",
                "--host",
                kfp_api.url,
                "--package",
                tiny_packages["kubeflow"],
                "--cron",
                "30 3 * * 1-5",
                "--max-concurrency",
                "2",
                "--name",
                "weekday-retrain",
                "--param",
                "epochs=3",
            ],
            capsys,
        )
    assert code == 0, err
    assert out.splitlines() == ["schedule id: rr-1", f"schedule url: {kfp_api.url}/#/recurringrun/details/rr-1"]
    (recurring,) = kfp_api.posted("/recurringruns")
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 30 3 * * 1-5"}}
    assert recurring["max_concurrency"] == 2
    assert recurring["no_catchup"] is True and recurring["mode"] == "ENABLE"
    assert recurring["display_name"] == "weekday-retrain"
    assert recurring["runtime_config"]["parameters"] == {"epochs": 3}
    assert recurring["pipeline_spec"]["platform_spec"]["platforms"]["kubernetes"]


@pytest.mark.parametrize(
    "cron, message",
    [
        ("0 0 3 * * 1", "cron needs 5 fields"),
        ("60 3 * * *", "minute field '60' is outside 0-59"),
        ("0 3 * * 7", "day of week field '7' is outside 0-6"),
        ("0 3 ? * *", "day of month field '?' is not valid"),
    ],
)
def test_schedule_refuses_bad_cron(tiny_packages, capsys, cron, message):
    with FakeKfp() as kfp_api:
        code, _, _ = run_cli(
            [
                "schedule",
                "create",
                "--backend",
                "kfp",
                "--host",
                kfp_api.url,
                "--package",
                tiny_packages["kubeflow"],
                "--cron",
                cron,
            ],
            capsys,
        )
    assert message in str(code)
    assert kfp_api.posted("/recurringruns") == []


def test_schedule_list_pause_resume_delete(tiny_packages, capsys):
    base = ["--backend", "kfp", "--host", None]
    with FakeKfp() as kfp_api:
        base[3] = kfp_api.url
        assert (
            run_cli(
                ["schedule", *base, "--package", tiny_packages["kubeflow"], "--cron", "0 3 * * *", "--name", "nightly"],
                capsys,
            )[0]
            == 0
        )

        code, out, _ = run_cli(["schedule", "list", *base], capsys)
        assert code == 0 and out.splitlines() == ["rr-1\tnightly\t0 0 3 * * *\tENABLED"]

        assert run_cli(["schedule", "pause", "rr-1", *base], capsys)[:2] == (0, "pause: rr-1\n")
        assert kfp_api.recurring_runs["rr-1"]["status"] == "DISABLED"
        assert run_cli(["schedule", "resume", "rr-1", *base], capsys)[0] == 0
        assert kfp_api.recurring_runs["rr-1"]["status"] == "ENABLED"
        assert run_cli(["schedule", "delete", "rr-1", *base], capsys)[0] == 0
        assert kfp_api.recurring_runs == {}

        code, _, _ = run_cli(["schedule", "pause", *base], capsys)
        assert "pause needs the schedule id" in str(code)


def test_unreachable_or_refusing_api_is_one_line(tiny_packages, capsys):
    from tests.cloud.conftest import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    code, _, _ = run_cli(
        ["submit", "--backend", "kfp", "--host", closed, "--package", tiny_packages["kubeflow"]], capsys
    )
    assert f"cannot reach the KFP API at {closed}" in str(code)
    with FakeKfp() as kfp_api:
        code, _, _ = run_cli(["schedule", "pause", "rr-404", "--backend", "kfp", "--host", kfp_api.url], capsys)
    assert f"the KFP API at {kfp_api.url} answered 404" in str(code) and "recurring run rr-404 not found" in str(code)
