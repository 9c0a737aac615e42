"""The CI/CD workflow runs the tests, compiles both targets and releases the YAMLs on tags.

GitHub Actions cannot run here; this checks the workflow file's structure, so that an edit that
drops a step or widens the release's permissions fails a test.
"""

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).parents[2] / ".github" / "workflows" / "ci.yml"


def load():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return workflow


def commands(job) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_push_and_pull_request_is_tested_and_compiled():
    workflow = load()
    assert workflow["on"]["push"]["tags"] == ["v*"] and "pull_request" in workflow["on"]
    assert workflow["permissions"] == {"contents": "read"}
    job = workflow["jobs"]["test-and-compile"]
    run = commands(job)
    assert run.index("make test") < run.index("make compile")
    assert "download.pytorch.org/whl/cpu" in job["env"]["TORCH_PIP_ARGS"]
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["with"]["path"].split() == ["build/pipeline-kubeflow.yaml", "build/pipeline-vertex.yaml"]


def test_tags_attach_both_yamls_to_the_release():
    release = load()["jobs"]["release"]
    assert release["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert release["needs"] == "test-and-compile"
    assert release["permissions"] == {"contents": "write"}
    run = commands(release)
    assert "gh release create" in run and "gh release upload" in run
    assert "build/pipeline-kubeflow.yaml build/pipeline-vertex.yaml" in run
    assert "secrets." not in WORKFLOW.read_text()  # github.token only, scoped to this job
