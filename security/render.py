"""Every Kubernetes manifest the project ships or writes, rendered into one folder for checkov.

- each kustomization under ``manifests/`` that is applied as a whole (the overlays, the monitor,
  Prometheus, Trainer's RBAC, the pipeline namespace's and the gateways' policies), through
  ``kubectl kustomize`` (kustomize v5 inside kubectl);
- the deploy step's InferenceService in both deployment modes, first model and canary;
- for every InferenceService, the Pod KServe would run for each predictor: checkov has no checks for
  KServe's custom resource, so without this view it would pass a predictor with no hardening at all.

Usage: ``python -m security.render OUT_DIR``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KUSTOMIZATIONS = ("monitor", "prometheus", "trainer", "kubeflow-network", "auth")
LIVE_MODEL, NEW_MODEL = "gs://bucket/models/run-1", "gs://bucket/models/run-2"


def kustomize(directory: Path) -> list[dict]:
    """The objects ``kubectl kustomize`` renders from ``directory``."""
    if shutil.which("kubectl") is None:
        raise SystemExit("error: kubectl is not on PATH: install it (Debian package kubectl) to render manifests/")
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"error: kubectl kustomize {directory} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def shipped_manifests() -> dict[str, list[dict]]:
    """name -> objects, for every overlay and applied-as-a-whole kustomization under manifests/."""
    rendered = {
        f"overlay-{path.parent.name}": kustomize(path.parent)
        for path in sorted((ROOT / "manifests" / "overlays").glob("*/kustomization.yaml"))
    }
    rendered.update({name: kustomize(ROOT / "manifests" / name) for name in KUSTOMIZATIONS})
    return rendered


def deploy_step_manifests() -> dict[str, list[dict]]:
    """The deploy step's InferenceService for each deployment mode, as the first model and as a canary."""
    from textclf.inferenceservice import DEPLOYMENT_MODES, DeploySettings, build_inference_service

    manifests = {}
    for mode in DEPLOYMENT_MODES:
        first = build_inference_service(LIVE_MODEL, DeploySettings(deployment_mode=mode))
        canary = build_inference_service(NEW_MODEL, DeploySettings(deployment_mode=mode, live_model_uri=LIVE_MODEL))
        manifests[f"deploy-{mode}"] = [first, canary]
    return manifests


def predictor_pods(isvc: dict) -> list[dict]:
    """The Pods KServe runs for ``isvc``'s predictor and each Standard-mode canary (pod fields only)."""
    from kubernetes.client import V1PodSpec

    pod_fields = set(V1PodSpec.attribute_map.values())
    name, namespace = isvc["metadata"]["name"], isvc["metadata"].get("namespace", "default")
    spec = isvc["spec"]
    predictors = [("predictor", spec["predictor"])]
    predictors += [(f"canary-{i}", c["predictor"]) for i, c in enumerate(spec.get("canary") or [])]
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{role}",
                "namespace": namespace,
                "labels": {"serving.kserve.io/inferenceservice": name},
            },
            "spec": {key: value for key, value in predictor.items() if key in pod_fields},
        }
        for role, predictor in predictors
    ]


def render_all(out_dir: Path) -> list[Path]:
    """Write every manifest (and the predictor Pods) to ``out_dir``, one YAML file per source."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, docs in {**shipped_manifests(), **deploy_step_manifests()}.items():
        pods = [pod for doc in docs if doc.get("kind") == "InferenceService" for pod in predictor_pods(doc)]
        path = out_dir / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs + pods, sort_keys=False))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m security.render", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    if args.out_dir.exists():
        shutil.rmtree(args.out_dir)
    for path in render_all(args.out_dir):
        print(f"rendered {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
