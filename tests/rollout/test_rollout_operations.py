"""apply / promote / rollback / status / wait against the fake Kubernetes API server.

No cluster can run here, so these tests talk HTTP to ``FakeKubeAPI`` (tests/rollout/fake_kube.py),
which stands in for kube-apiserver with KServe's CRD; they assert the requests sent and the
objects that result.
"""

from __future__ import annotations

import json
import socket

import pytest

from textclf.rollout import (
    ClusterUnreachableError,
    ConflictError,
    CRDNotInstalledError,
    InferenceServiceAPI,
    InferenceServiceNotFoundError,
    InvalidManifestError,
    NoCanaryError,
    PermissionDeniedError,
    WaitTimeoutError,
    apply_inference_service,
    get_status,
    promote,
    rollback,
    wait_ready,
)
from textclf.rollout.operations import LAST_APPLIED_ANNOTATION
from tests.rollout.conftest import NAMESPACE, isvc_manifest, kserve_status, storage_uri_of
from tests.rollout.fake_kube import FakeKubeAPI

ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices"


def live_canary(kube, api, new_uri="gs://bucket/models/run-2", percent=10):
    """model 1 live at 100%, then model 2 applied as a canary."""
    apply_inference_service(isvc_manifest(), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_status("textclf-predictor-00001"))
    apply_inference_service(isvc_manifest(new_uri, canary=percent), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_status(
        "textclf-predictor-00002", "textclf-predictor-00001", percent, generation=2))


def test_apply_new_creates_with_full_traffic_and_remembers_what_it_applied(kube, api):
    created = apply_inference_service(isvc_manifest(canary=10), api=api)

    assert [(r.method, r.path) for r in kube.requests] == [
        ("GET", f"{ISVC_PATH}/textclf"),
        ("GET", "/apis/serving.kserve.io/v1beta1"),  # 404 above: is it "not found" or "no CRD"?
        ("POST", ISVC_PATH),
    ]
    posted = kube.requests[-1].body
    assert "canaryTrafficPercent" not in posted["spec"]["predictor"]  # nothing live to split with
    stored = kube.get(NAMESPACE, "textclf")
    assert stored == created
    assert storage_uri_of(stored) == "gs://bucket/models/run-1"
    remembered = json.loads(stored["metadata"]["annotations"][LAST_APPLIED_ANNOTATION])
    assert remembered["spec"] == stored["spec"]
    assert stored["metadata"]["labels"] == {"app": "textclf"}


def test_apply_existing_patches_the_new_model_in_as_a_canary(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    before = kube.get(NAMESPACE, "textclf")
    kube.requests.clear()

    patched = apply_inference_service(isvc_manifest("gs://bucket/models/run-2", canary=10), api=api)

    assert [(r.method, r.path) for r in kube.requests] == [
        ("GET", f"{ISVC_PATH}/textclf"), ("PATCH", f"{ISVC_PATH}/textclf")]
    patch = kube.requests[-1]
    assert patch.content_type == "application/merge-patch+json"
    assert patch.query == "fieldManager=textclf-rollout"
    assert patch.body["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert patch.body["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert storage_uri_of(patched) == "gs://bucket/models/run-2"
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patched["metadata"]["generation"] == 2
    assert kube.get(NAMESPACE, "textclf") == patched


def test_apply_twice_sends_no_second_write(kube, api):
    manifest = isvc_manifest("gs://bucket/models/run-2", canary=10)
    apply_inference_service(isvc_manifest(), api=api)
    first = apply_inference_service(manifest, api=api)
    kube.requests.clear()

    second = apply_inference_service(manifest, api=api)

    assert kube.writes() == []
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_canary_percent_option_overrides_the_manifest_for_a_live_service(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    patched = apply_inference_service(isvc_manifest("gs://bucket/models/run-2"), canary_percent=25, api=api)
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 25


def test_reapplying_the_same_model_after_promote_or_rollback_keeps_the_split(kube, api):
    manifest = isvc_manifest("gs://bucket/models/run-2", canary=10)
    live_canary(kube, api)
    promote("textclf", api=api)
    kube.requests.clear()
    apply_inference_service(manifest, api=api)
    assert kube.writes() == []
    assert "canaryTrafficPercent" not in kube.get(NAMESPACE, "textclf")["spec"]["predictor"]

    apply_inference_service(isvc_manifest("gs://bucket/models/run-3", canary=10), api=api)
    rollback("textclf", api=api)
    kube.requests.clear()
    apply_inference_service(isvc_manifest("gs://bucket/models/run-3", canary=10), api=api)
    assert kube.writes() == []
    assert kube.get(NAMESPACE, "textclf")["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_apply_removes_what_the_manifest_dropped_and_keeps_what_others_set(kube, api):
    with_logger = isvc_manifest()
    with_logger["spec"]["predictor"]["logger"] = {"mode": "all", "url": "http://textclf-monitor.models.svc.cluster.local/"}
    apply_inference_service(with_logger, api=api)
    # KServe's defaulting webhook (or an operator) sets a field no manifest of ours has.
    kube.edit(NAMESPACE, "textclf", lambda o: o["spec"]["predictor"].update(timeout=60))

    result = apply_inference_service(isvc_manifest(), api=api)

    assert kube.requests[-1].body["spec"]["predictor"]["logger"] is None
    assert "logger" not in result["spec"]["predictor"]
    assert result["spec"]["predictor"]["timeout"] == 60


def test_promote_removes_the_canary_share_once(kube, api):
    live_canary(kube, api)
    kube.requests.clear()

    promoted = promote("textclf", api=api)

    assert kube.writes()[0].body["spec"]["predictor"] == {"canaryTrafficPercent": None}
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    assert storage_uri_of(promoted) == "gs://bucket/models/run-2"
    kube.requests.clear()
    assert promote("textclf", NAMESPACE, api=api) == kube.get(NAMESPACE, "textclf")
    assert kube.writes() == []


def test_rollback_sends_all_traffic_back_once(kube, api):
    live_canary(kube, api)
    kube.requests.clear()

    rolled_back = rollback("textclf", api=api)

    write = kube.writes()[0]
    assert write.body["spec"]["predictor"] == {"canaryTrafficPercent": 0}
    assert write.body["metadata"]["resourceVersion"]
    assert rolled_back["spec"]["predictor"]["canaryTrafficPercent"] == 0
    kube.requests.clear()
    rollback("textclf", api=api)
    assert kube.writes() == []


def test_rollback_without_a_canary_is_a_named_error(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    kube.requests.clear()
    with pytest.raises(NoCanaryError, match="no canary in progress"):
        rollback("textclf", api=api)
    assert kube.writes() == []


def test_status_reports_revisions_and_split(kube, api):
    live_canary(kube, api)
    status = get_status("textclf", api=api)
    assert status.ready and status.settled
    assert status.canary_percent == 10
    assert status.previous_rolled_out_revision == "textclf-predictor-00001"
    assert [(t.revision, t.percent, t.tag) for t in status.traffic] == [
        ("textclf-predictor-00001", 90, "prev"), ("textclf-predictor-00002", 10, "latest")]
    text = status.describe()
    assert "textclf-predictor-00001 90% (prev), textclf-predictor-00002 10% (latest)" in text
    assert "http://textclf.models.example.com" in text


def test_wait_returns_once_the_new_generation_is_ready(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_status("textclf-predictor-00001"))
    apply_inference_service(isvc_manifest("gs://bucket/models/run-2", canary=10), api=api)  # generation 2
    polls = []

    def controller_catches_up(seconds):
        polls.append(seconds)
        if len(polls) == 2:
            kube.set_status(NAMESPACE, "textclf", kserve_status(
                "textclf-predictor-00002", "textclf-predictor-00001", 10, generation=2))

    status = wait_ready("textclf", timeout_s=60, interval_s=1, api=api, sleep=controller_catches_up)

    assert len(polls) == 2  # still at observedGeneration 1 on the first two polls
    assert status.settled and status.latest_ready_revision == "textclf-predictor-00002"


def test_wait_times_out_with_the_last_status(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_status("textclf-predictor-00001", ready=False))
    now = [0.0]

    def fake_sleep(seconds):
        now[0] += seconds

    with pytest.raises(WaitTimeoutError, match="not ready after 30s") as error:
        wait_ready("textclf", timeout_s=30, interval_s=10, api=api, sleep=fake_sleep, clock=lambda: now[0])
    assert "revision not ready" in str(error.value)
    assert now[0] == 30


# --- errors ---


def test_crd_not_installed(tmp_path):
    with FakeKubeAPI(crd_installed=False) as kube:
        api = InferenceServiceAPI.connect(kubeconfig=str(kube.kubeconfig(tmp_path / "kc")), timeout_s=5)
        with pytest.raises(CRDNotInstalledError, match="install KServe"):
            apply_inference_service(isvc_manifest(), api=api)
        with pytest.raises(CRDNotInstalledError):
            get_status("textclf", api=api)
        assert kube.writes() == []


def test_not_found(kube, api):
    for command in (get_status, promote, rollback):
        with pytest.raises(InferenceServiceNotFoundError, match='"textclf" not found'):
            command("textclf", api=api)


def test_conflict_when_someone_writes_between_read_and_patch(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    kube.before["PATCH"] = lambda: kube.edit(NAMESPACE, "textclf", lambda o: o["metadata"]["labels"].update(x="y"))
    with pytest.raises(ConflictError, match="the object has been modified"):
        apply_inference_service(isvc_manifest("gs://bucket/models/run-2", canary=10), api=api)
    assert storage_uri_of(kube.get(NAMESPACE, "textclf")) == "gs://bucket/models/run-1"


def test_conflict_when_someone_creates_it_first(kube, api):
    kube.before["POST"] = lambda: kube.seed(isvc_manifest("gs://bucket/other"))
    with pytest.raises(ConflictError, match="already exists"):
        apply_inference_service(isvc_manifest(), api=api)


def test_permission_denied_names_the_role(kube, api):
    kube.forbidden = True
    with pytest.raises(PermissionDeniedError, match="rbac-deployer.yaml"):
        apply_inference_service(isvc_manifest(), api=api)


def test_cluster_unreachable_fails_fast(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kube = FakeKubeAPI()  # never started: only its kubeconfig writer is used, pointed at a closed port
    config = kube.kubeconfig(tmp_path / "kc")
    config.write_text(config.read_text().replace(kube.url, f"http://127.0.0.1:{port}"))
    api = InferenceServiceAPI.connect(kubeconfig=str(config), timeout_s=5)
    with pytest.raises(ClusterUnreachableError, match=f"127.0.0.1:{port}"):
        apply_inference_service(isvc_manifest(), api=api)


def test_no_kubeconfig_and_not_in_a_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ClusterUnreachableError, match="no kubeconfig"):
        apply_inference_service(isvc_manifest())


@pytest.mark.parametrize("breakage, message", [
    (lambda m: m.update(kind="Deployment"), "kind InferenceService"),
    (lambda m: m["metadata"].pop("name"), "metadata.name"),
    (lambda m: m["spec"].pop("predictor"), "spec.predictor"),
    (lambda m: m["spec"]["predictor"].update(canaryTrafficPercent=150), "0 to 100"),
    (lambda m: m["metadata"].update(namespace="elsewhere"), "does not match"),
])
def test_invalid_manifest_is_refused_before_any_request(kube, api, breakage, message):
    manifest = isvc_manifest()
    breakage(manifest)
    with pytest.raises(InvalidManifestError, match=message):
        apply_inference_service(manifest, NAMESPACE, api=api)
    assert kube.requests == []
