"""apply / promote / rollback / status / wait (Serverless mode) against the fake Kubernetes API server.

No cluster can run here, so these tests talk HTTP to ``FakeKubeAPI`` (tests/rollout/fake_kube.py),
which stands in for kube-apiserver with KServe's CRD, server-side apply included; they assert the
requests sent and the objects that result. Standard mode: test_rollout_standard.py.
"""

from __future__ import annotations

import socket

import pytest

from tests.rollout.conftest import NAMESPACE, isvc_manifest, kserve_status, storage_uri_of
from tests.rollout.fake_kube import FakeKubeAPI
from textclf.platform.kube import APPLY_PATCH
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

ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices"


def live_canary(kube, api, new_uri="gs://bucket/models/run-2", percent=10):
    """model 1 live at 100%, then model 2 applied as a canary."""
    apply_inference_service(isvc_manifest(), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_status("textclf-predictor-00001"))
    apply_inference_service(isvc_manifest(new_uri, canary=percent), api=api)
    kube.set_status(
        NAMESPACE, "textclf", kserve_status("textclf-predictor-00002", "textclf-predictor-00001", percent, generation=2)
    )


def test_apply_new_creates_with_full_traffic_by_server_side_apply(kube, api):
    created = apply_inference_service(isvc_manifest(canary=10), api=api)

    assert [(r.method, r.path) for r in kube.requests] == [
        ("GET", f"{ISVC_PATH}/textclf"),
        ("GET", "/apis/serving.kserve.io/v1beta1"),  # 404 above: is it "not found" or "no CRD"?
        ("PATCH", f"{ISVC_PATH}/textclf"),  # apply creates what does not exist
    ]
    applied = kube.requests[-1]
    assert applied.content_type == APPLY_PATCH
    assert applied.params == {"fieldManager": "textclf-rollout", "force": "true", "fieldValidation": "Strict"}
    assert "canaryTrafficPercent" not in applied.body["spec"]["predictor"]  # nothing live to split with
    assert "resourceVersion" not in applied.body["metadata"]
    stored = kube.get(NAMESPACE, "textclf")
    assert stored == created
    assert storage_uri_of(stored) == "gs://bucket/models/run-1"
    assert stored["metadata"]["labels"] == {"app": "textclf"}
    assert stored["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Serverless"}  # no bookkeeping
    assert list(kube.managers(NAMESPACE, "textclf")) == [("textclf-rollout", "Apply")]


def test_apply_existing_makes_the_new_model_a_canary(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    before = kube.get(NAMESPACE, "textclf")
    kube.requests.clear()

    patched = apply_inference_service(isvc_manifest("gs://bucket/models/run-2", canary=10), api=api)

    assert [(r.method, r.path) for r in kube.requests] == [
        ("GET", f"{ISVC_PATH}/textclf"),
        ("PATCH", f"{ISVC_PATH}/textclf"),
    ]
    applied = kube.requests[-1]
    assert applied.content_type == APPLY_PATCH
    assert applied.body["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # precondition
    assert applied.body["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert storage_uri_of(patched) == "gs://bucket/models/run-2"
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert patched["metadata"]["generation"] == 2
    assert kube.get(NAMESPACE, "textclf") == patched


def test_apply_twice_changes_nothing_the_second_time(kube, api):
    manifest = isvc_manifest("gs://bucket/models/run-2", canary=10)
    apply_inference_service(isvc_manifest(), api=api)
    first = apply_inference_service(manifest, api=api)

    second = apply_inference_service(manifest, api=api)

    assert second == first  # same resourceVersion and generation: the API server saw a no-op
    assert kube.get(NAMESPACE, "textclf") == first


def test_canary_percent_option_overrides_the_manifest_for_a_live_service(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    patched = apply_inference_service(isvc_manifest("gs://bucket/models/run-2"), canary_percent=25, api=api)
    assert patched["spec"]["predictor"]["canaryTrafficPercent"] == 25


def test_a_new_model_without_a_share_takes_all_traffic_even_after_a_rollback(kube, api):
    live_canary(kube, api)
    rollback("textclf", api=api)  # canaryTrafficPercent 0, owned by the rollback's merge patch
    kube.requests.clear()

    result = apply_inference_service(isvc_manifest("gs://bucket/models/run-3"), api=api)

    assert "canaryTrafficPercent" not in result["spec"]["predictor"]
    assert storage_uri_of(result) == "gs://bucket/models/run-3"
    assert [(r.method, r.content_type) for r in kube.writes()] == [
        ("PATCH", APPLY_PATCH),
        ("PATCH", "application/merge-patch+json"),
    ]  # the leftover 0 is removed


def test_reapplying_the_same_model_after_promote_or_rollback_keeps_the_split(kube, api):
    manifest = isvc_manifest("gs://bucket/models/run-2", canary=10)
    live_canary(kube, api)
    promoted = promote("textclf", api=api)
    assert apply_inference_service(manifest, api=api) == promoted  # no-op: no new canary
    assert "canaryTrafficPercent" not in kube.get(NAMESPACE, "textclf")["spec"]["predictor"]

    apply_inference_service(isvc_manifest("gs://bucket/models/run-3", canary=10), api=api)
    rolled_back = rollback("textclf", api=api)
    again = apply_inference_service(isvc_manifest("gs://bucket/models/run-3", canary=10), api=api)
    assert again["spec"] == rolled_back["spec"]
    assert again["metadata"]["generation"] == rolled_back["metadata"]["generation"]
    assert again["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_apply_removes_what_the_manifest_dropped_and_keeps_what_others_set(kube, api):
    with_logger = isvc_manifest()
    with_logger["spec"]["predictor"]["logger"] = {
        "mode": "all",
        "url": "http://textclf-monitor.models.svc.cluster.local/",
    }
    apply_inference_service(with_logger, api=api)
    # KServe's defaulting webhook (or an operator) sets a field no manifest of ours has.
    kube.edit(NAMESPACE, "textclf", lambda o: o["spec"]["predictor"].update(timeout=60))

    result = apply_inference_service(isvc_manifest(), api=api)

    assert "logger" not in kube.requests[-1].body["spec"]["predictor"]
    assert not result["spec"]["predictor"].get("logger")
    assert result["spec"]["predictor"]["timeout"] == 60


def test_apply_takes_over_a_field_another_manager_changed(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    kube.edit(NAMESPACE, "textclf", lambda o: o["spec"]["predictor"].update(minReplicas=4))
    result = apply_inference_service(isvc_manifest(), api=api)  # force: the manifest wins
    assert result["spec"]["predictor"]["minReplicas"] == 1
    assert ("kubectl-edit", "Update") not in kube.managers(NAMESPACE, "textclf")


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
        ("textclf-predictor-00001", 90, "prev"),
        ("textclf-predictor-00002", 10, "latest"),
    ]
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
            kube.set_status(
                NAMESPACE,
                "textclf",
                kserve_status("textclf-predictor-00002", "textclf-predictor-00001", 10, generation=2),
            )

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


def test_an_object_created_between_read_and_apply_is_taken_over(kube, api):
    """Server-side apply has no "must not exist" precondition: the apply merges into the newcomer."""
    other = isvc_manifest("gs://bucket/other")
    other["spec"]["predictor"]["timeout"] = 30
    kube.before["PATCH"] = lambda: kube.seed(other)
    result = apply_inference_service(isvc_manifest(), api=api)
    assert storage_uri_of(result) == "gs://bucket/models/run-1"
    assert result["spec"]["predictor"]["timeout"] == 30  # the creator's own field stays


def test_a_misspelt_field_is_refused_by_the_api_server_not_dropped(kube, api):
    manifest = isvc_manifest()
    manifest["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(InvalidManifestError, match='unknown field "spec.predictor.minReplica"'):
        apply_inference_service(manifest, api=api)
    assert kube.objects == {}


def test_the_deployment_mode_cannot_change_under_a_live_service(kube, api):
    apply_inference_service(isvc_manifest(), api=api)
    standard = isvc_manifest("gs://bucket/models/run-2")
    standard["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Standard"
    kube.requests.clear()
    with pytest.raises(
        InvalidManifestError, match="for Standard mode but the live InferenceService runs in Serverless"
    ):
        apply_inference_service(standard, api=api)
    assert kube.writes() == []


def test_a_mode_comes_from_the_manifest_or_the_live_service(kube, api):
    unannotated = isvc_manifest()
    del unannotated["metadata"]["annotations"]
    with pytest.raises(InvalidManifestError, match="no serving.kserve.io/deploymentMode annotation"):
        apply_inference_service(unannotated, api=api)
    apply_inference_service(isvc_manifest(), api=api)
    second = isvc_manifest("gs://bucket/models/run-2", canary=10)
    del second["metadata"]["annotations"]
    assert apply_inference_service(second, api=api)["spec"]["predictor"]["canaryTrafficPercent"] == 10


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


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda m: m.update(kind="Deployment"), "kind InferenceService"),
        (lambda m: m["metadata"].pop("name"), "metadata.name"),
        (lambda m: m["spec"].pop("predictor"), "spec.predictor"),
        (lambda m: m["spec"]["predictor"].update(canaryTrafficPercent=150), "0 to 100"),
        (lambda m: m["metadata"].update(namespace="elsewhere"), "does not match"),
        (
            lambda m: m["spec"].update(canary=[{"trafficPercent": 10, "predictor": {"name": "c"}}]),
            "spec.canary is only supported in Standard",
        ),
        (
            lambda m: m["metadata"]["annotations"].update({"serving.kserve.io/deploymentMode": "ModelMesh"}),
            "'ModelMesh' is not one this tool rolls out",
        ),
    ],
)
def test_invalid_manifest_is_refused_before_any_request(kube, api, breakage, message):
    manifest = isvc_manifest()
    breakage(manifest)
    with pytest.raises(InvalidManifestError, match=message):
        apply_inference_service(manifest, NAMESPACE, api=api)
    assert kube.requests == []
