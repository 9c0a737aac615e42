"""manifests/monitor renders, validates, matches the logger URL, and runs commands our CLI accepts.

Rendering needs ``kubectl`` (``kubectl kustomize``) or ``kustomize`` on PATH; without either the
test skips, saying so. Core objects are checked with kubernetes-validate's schemas (strict).
"""

import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from serving.monitor.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33"


def render(directory: Path) -> list[dict]:
    command = ["kustomize", "build"] if shutil.which("kustomize") else ["kubectl", "kustomize"]
    out = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


pytestmark = pytest.mark.skipif(
    not (shutil.which("kustomize") or shutil.which("kubectl")), reason="neither kustomize nor kubectl on PATH"
)


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return {d["kind"]: d for d in render(ROOT / "manifests" / "monitor")}


def test_objects_validate(docs):
    assert set(docs) == {"Deployment", "Service", "CronJob"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == "textclf"


def test_service_is_where_the_kserve_logger_sends(docs):
    logger = yaml.safe_load((ROOT / "manifests/components/logger/kustomization.yaml").read_text())
    url = urlparse(yaml.safe_load(logger["patches"][0]["patch"])["spec"]["predictor"]["logger"]["url"])
    service, namespace = url.hostname.split(".")[:2]
    assert (service, namespace, url.port or 80) == (
        docs["Service"]["metadata"]["name"],
        docs["Service"]["metadata"]["namespace"],
        docs["Service"]["spec"]["ports"][0]["port"],
    )
    pod_labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Service"]["spec"]["selector"].items() <= pod_labels.items()


def test_containers_run_commands_the_cli_accepts(docs):
    parser = build_parser()
    monitor = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert monitor["command"][:3] == ["python", "-m", "serving.monitor"]
    args = parser.parse_args(monitor["command"][3:] + monitor["args"])
    assert args.model_dir == "/mnt/models" and args.port == monitor["ports"][0]["containerPort"]
    assert args.webhook_url is None  # comes from the Secret through the environment, never from YAML

    check = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    args = parser.parse_args(check["command"][3:] + check["args"])
    assert args.url == "http://textclf-monitor.textclf.svc.cluster.local/drift"
    assert shlex.split(args.then)[:4] == ["python", "-m", "pipelines", "submit"]


def test_the_model_reaches_the_monitor_through_the_storage_initializer(docs):
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    assert init["args"] == ["$(STORAGE_URI)", "/mnt/models"]
    model = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}["/mnt/models"]
    assert {"name": model, "mountPath": "/mnt/models", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert docs["Deployment"]["spec"]["replicas"] == 1  # the windows are in memory: one monitor sees all traffic
