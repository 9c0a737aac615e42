"""The compiled YAMLs (what gets attached to releases and uploaded to clusters) carry no secret
values: keys reach the steps from a Kubernetes secret or Secret Manager at run time."""

import re
from pathlib import Path

import pytest
import yaml

SENTINEL = "sentinel-secret-0123456789abcdef"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def literal_secret_env(document) -> list[str]:
    """Names of container env vars that look like secrets and are set to a literal value."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "env" and isinstance(value, list):
                found += [
                    e["name"]
                    for e in value
                    if isinstance(e, dict) and SECRET_NAME.search(e.get("name", "")) and "value" in e
                ]
            else:
                found += literal_secret_env(value)
    elif isinstance(document, list):
        for item in document:
            found += literal_secret_env(item)
    return found


@pytest.fixture
def secrets_in_environment(monkeypatch):
    """Secrets set where a careless compile step could pick them up."""
    for name in ("WANDB_API_KEY", "GOOGLE_API_KEY", "KF_PIPELINES_TOKEN", "HF_TOKEN"):
        monkeypatch.setenv(name, SENTINEL)


def test_the_checker_sees_a_literal_secret():
    assert literal_secret_env(
        {"a": [{"container": {"env": [{"name": "WANDB_API_KEY", "value": "x"}, {"name": "MODE", "value": "offline"}]}}]}
    ) == ["WANDB_API_KEY"]


def test_secret_as_env_compiles_to_a_reference(tiny_packages):
    """The kfp-kubernetes call recommended for the W&B key: a secret name and key, never a value."""
    with open(tiny_packages["kubeflow"]) as stream:
        _, platform = yaml.safe_load_all(stream)
    (executor,) = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    (secret,) = executor["secretAsEnv"]
    assert secret["keyToEnv"] == [{"envVar": "WANDB_API_KEY", "secretKey": "api-key"}]
    assert secret["optional"] is True  # no secret in the cluster: offline tracking, not a failed pod
    assert secret["secretNameParameter"]["runtimeValue"]["constant"] == "wandb"


@pytest.mark.parametrize("target", ["kubeflow", "vertex"])
def test_compiled_pipeline_carries_no_secret_values(secrets_in_environment, tmp_path, target):
    from pipelines.compile import compile_pipeline

    text = Path(compile_pipeline(target, str(tmp_path / f"pipeline-{target}.yaml"))).read_text()
    assert SENTINEL not in text
    assert literal_secret_env(list(yaml.safe_load_all(text))) == []
