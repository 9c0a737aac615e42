"""``python -m serving.rollout`` end to end against the fake Kubernetes API server.

The fake (tests/rollout/fake_kube.py) stands in for a cluster that cannot run here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from serving.rollout.__main__ import main
from tests.rollout.conftest import NAMESPACE, isvc_manifest, kserve_status, storage_uri_of


def test_apply_status_promote(kube, kubeconfig, tmp_path, capsys):
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(yaml.safe_dump(isvc_manifest()))
    second.write_text(yaml.safe_dump(isvc_manifest("gs://bucket/models/run-2", canary=10)))
    cli = ["--kubeconfig", str(kubeconfig)]

    assert main([*cli, "apply", str(first)]) == 0
    kube.set_status(NAMESPACE, "textclf", kserve_status("textclf-predictor-00001"))
    assert main([*cli, "apply", str(second)]) == 0
    assert "InferenceService models/textclf applied (generation 2)" in capsys.readouterr().out
    kube.set_status(NAMESPACE, "textclf", kserve_status(
        "textclf-predictor-00002", "textclf-predictor-00001", 10, generation=2))

    assert main([*cli, "status", "textclf", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["canary_percent"] == 10 and status["ready"] is True

    assert main([*cli, "promote", "textclf"]) == 0
    assert "canaryTrafficPercent:  none" in capsys.readouterr().out
    live = kube.get(NAMESPACE, "textclf")
    assert "canaryTrafficPercent" not in live["spec"]["predictor"]
    assert storage_uri_of(live) == "gs://bucket/models/run-2"


def test_errors_print_their_name_and_exit_1(kube, kubeconfig, tmp_path, capsys):
    cli = ["--kubeconfig", str(kubeconfig)]
    assert main([*cli, "rollback", "textclf"]) == 1
    assert "error: InferenceServiceNotFoundError:" in capsys.readouterr().err

    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump_all([isvc_manifest(), isvc_manifest()]))
    assert main([*cli, "apply", str(two)]) == 1
    assert "exactly one document, found 2" in capsys.readouterr().err
    assert kube.writes() == []


def test_cli_imports_neither_torch_nor_kserve():
    code = ("import sys, serving.rollout.__main__, serving.rollout.analysis; "
            "print(sorted(m for m in ('torch', 'kserve', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
