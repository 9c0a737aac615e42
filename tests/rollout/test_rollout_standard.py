"""Standard (RawDeployment) mode: apply / status / promote / rollback against the fake API server.

KServe's Standard-mode canary (v0.20.0) is ``spec.canary[]`` (``{predictor, trafficPercent}``)
next to the stable ``spec.predictor``; its controller cannot run here, so the fake Kubernetes API
server (fake_kube.py, server-side apply and KServe's CRD schema included) stands in for the
cluster, and tests write the status its controller would (``kserve_standard_status``). The
manifests are the deploy step's own (``build_inference_service`` with ``deployment_mode=standard``).
"""

from __future__ import annotations

import copy

import pytest

from tests.rollout import crd
from tests.rollout.conftest import NAMESPACE, isvc_manifest, kserve_standard_status, storage_uri_of
from textclf.inferenceservice import DeploySettings, build_inference_service, predictor_name
from textclf.platform.kube import APPLY_PATCH
from textclf.rollout import InvalidManifestError, NoCanaryError, apply_inference_service, get_status, promote, rollback

U1, U2, U3 = "gs://bucket/models/run-1", "gs://bucket/models/run-2", "gs://bucket/models/run-3"
ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/textclf"


def standard(model: str, live: str = "", percent: int = 10) -> dict:
    """The deploy step's Standard-mode manifest for ``model`` (a canary of ``live`` when given)."""
    settings = DeploySettings(
        namespace=NAMESPACE,
        deployment_mode="standard",
        live_model_uri=live,
        canary_traffic_percent=percent,
        serving_image="registry.example/textclf-server:1",
    )
    return build_inference_service(model, settings)


def canary_of(isvc: dict) -> dict:
    [canary] = isvc["spec"]["canary"]
    return canary


@pytest.fixture
def with_canary(kube, api) -> dict:
    """U1 live, then U2 applied as its 10% canary; returns the applied object."""
    apply_inference_service(standard(U1), api=api)
    kube.set_status(NAMESPACE, "textclf", kserve_standard_status())
    return apply_inference_service(standard(U2, live=U1), api=api)


def test_the_deploy_steps_standard_manifests_fit_kserves_crd():
    for manifest in (standard(U1), standard(U2, live=U1)):
        assert crd.problems(manifest) == []
        annotations = manifest["metadata"]["annotations"]
        assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
        assert "serving.kserve.io/enable-tag-routing" not in annotations  # Knative only
    canary = standard(U2, live=U1)
    assert storage_uri_of(canary) == U1 and canary["spec"]["predictor"]["name"] == predictor_name(U1)
    entry = canary_of(canary)
    assert entry["trafficPercent"] == 10 and entry["predictor"]["name"] == predictor_name(U2)
    assert not {"minReplicas", "maxReplicas", "canaryTrafficPercent"} & entry["predictor"].keys()


def test_the_first_model_is_created_as_the_stable_predictor(kube, api):
    created = apply_inference_service(standard(U2, live=U1), api=api)  # nothing live: no canary
    assert kube.requests[-1].content_type == APPLY_PATCH
    assert "canary" not in created["spec"]
    assert storage_uri_of(created) == U2
    assert created["spec"]["predictor"]["name"] == predictor_name(U2)


def test_a_new_model_becomes_the_canary_and_the_stable_predictor_stays_as_it_runs(kube, api):
    apply_inference_service(standard(U1), api=api)
    # Something the manifest does not have (a defaulting webhook, an operator) is on the live stable predictor.
    kube.edit(NAMESPACE, "textclf", lambda o: o["spec"]["predictor"].update(timeout=45))
    live = kube.get(NAMESPACE, "textclf")
    stable = live["spec"]["predictor"]

    result = apply_inference_service(standard(U2, live=U1, percent=20), api=api)

    assert result["spec"]["predictor"] == stable
    entry = canary_of(result)
    assert entry["trafficPercent"] == 20
    assert entry["predictor"]["name"] == predictor_name(U2)
    assert entry["predictor"]["containers"][0]["env"] == [{"name": "STORAGE_URI", "value": U2}]
    assert result["metadata"]["generation"] == live["metadata"]["generation"] + 1
    assert crd.problems(result) == []


def test_status_reports_the_stable_and_the_canary_predictor(kube, api, with_canary):
    canary_name = predictor_name(U2)
    kube.set_status(NAMESPACE, "textclf", kserve_standard_status({canary_name: (10, False)}, generation=2))
    status = get_status("textclf", api=api)
    assert status.deployment_mode == "standard" and status.canary_percent == 10
    assert not status.settled  # the canary's Deployment is not available yet

    kube.set_status(NAMESPACE, "textclf", kserve_standard_status({canary_name: (10, True)}, generation=2))
    status = get_status("textclf", api=api)
    assert status.settled
    stable_service, canary_service = f"textclf-{predictor_name(U1)}-predictor", f"textclf-{canary_name}-predictor"
    assert [(t.revision, t.percent, t.tag, t.latest, t.model_uri) for t in status.traffic] == [
        (stable_service, 90, "stable", False, U1),
        (canary_service, 10, "canary", True, U2),
    ]
    assert status.traffic[1].url == f"http://{canary_service}.{NAMESPACE}.svc.cluster.local"
    text = status.describe()
    assert "(Standard mode)" in text
    assert f"stable predictor:      {stable_service} 90%, model {U1}" in text
    assert f"canary:                {canary_service} 10% (ready), model {U2}" in text


def test_reapplying_the_canary_keeps_its_share(kube, api, with_canary):
    again = apply_inference_service(standard(U2, live=U1, percent=50), canary_percent=30, api=api)
    assert again == with_canary


def test_promote_makes_the_canary_the_stable_predictor_under_its_name(kube, api, with_canary):
    kube.requests.clear()
    promoted = promote("textclf", api=api)

    [write] = kube.writes()
    assert write.content_type == "application/merge-patch+json"
    assert write.body["spec"]["canary"] is None and write.body["metadata"]["resourceVersion"]
    predictor = promoted["spec"]["predictor"]
    assert predictor["name"] == predictor_name(U2)  # the canary's Deployment carries on as the stable one
    assert storage_uri_of(promoted) == U2
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)  # the stable's autoscaling
    assert "canary" not in promoted["spec"]
    assert crd.problems(promoted) == []
    # Idempotent, and the model's own manifests change nothing in the spec any more.
    assert promote("textclf", api=api) == promoted
    for manifest in (standard(U2, live=U1), standard(U2)):
        again = apply_inference_service(manifest, api=api)
        assert (again["spec"], again["metadata"]["generation"]) == (
            promoted["spec"],
            promoted["metadata"]["generation"],
        )


def test_rollback_removes_the_canary_and_leaves_the_stable_predictor(kube, api, with_canary):
    rolled_back = rollback("textclf", api=api)
    assert "canary" not in rolled_back["spec"]
    assert rolled_back["spec"]["predictor"] == with_canary["spec"]["predictor"]
    assert kube.writes()[-1].body["spec"] == {"canary": None}
    with pytest.raises(NoCanaryError, match="no canary in progress"):
        rollback("textclf", api=api)
    assert promote("textclf", api=api) == rolled_back  # nothing to promote


def test_a_plain_manifest_gets_a_canary_name_and_the_share_asked_for(kube, api):
    plain = isvc_manifest()  # like manifests/overlays/standard: no predictor name, no canary
    plain["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Standard"
    apply_inference_service(plain, api=api)
    newer = copy.deepcopy(plain)
    newer["spec"]["predictor"]["containers"][0]["env"] = [{"name": "STORAGE_URI", "value": U2}]

    result = apply_inference_service(newer, canary_percent=20, api=api)

    assert "name" not in result["spec"]["predictor"]
    assert canary_of(result)["predictor"]["name"] == predictor_name(U2) and canary_of(result)["trafficPercent"] == 20
    assert promote("textclf", api=api)["spec"]["predictor"]["name"] == predictor_name(U2)


def test_a_new_model_without_a_share_replaces_the_stable_in_place(kube, api):
    apply_inference_service(standard(U1), api=api)
    plain = copy.deepcopy(standard(U3))
    del plain["spec"]["predictor"]["name"]

    result = apply_inference_service(plain, api=api)

    assert "canary" not in result["spec"]
    assert storage_uri_of(result) == U3
    assert result["spec"]["predictor"]["name"] == predictor_name(U1)  # same Deployment, rolling update


def test_applying_the_stable_model_during_a_canary_ends_the_canary(kube, api, with_canary):
    result = apply_inference_service(standard(U1), api=api)
    assert "canary" not in result["spec"]
    assert result["spec"]["predictor"] == with_canary["spec"]["predictor"]


def test_a_newer_model_replaces_a_canary_in_progress(kube, api, with_canary):
    result = apply_inference_service(standard(U3, live=U1), api=api)
    assert canary_of(result)["predictor"]["name"] == predictor_name(U3)
    assert result["spec"]["predictor"] == with_canary["spec"]["predictor"]


@pytest.mark.parametrize(
    "breakage, message",
    [
        (
            lambda m: canary_of(m)["predictor"].update(name=m["spec"]["predictor"]["name"]),
            "must differ from the stable",
        ),
        (lambda m: canary_of(m)["predictor"].update(maxReplicas=3), "must not set maxReplicas"),
        (lambda m: m["spec"]["canary"].append(copy.deepcopy(canary_of(m))), "more than one spec.canary"),
        (lambda m: canary_of(m).update(trafficPercent=101), "from 0 to 100"),
        (lambda m: m["spec"]["predictor"].update(canaryTrafficPercent=10), "does nothing in Standard mode"),
        (lambda m: m["spec"]["predictor"]["containers"][0].update(env=[]), "needs a stable predictor with a model"),
    ],
)
def test_what_kserves_webhook_would_refuse_is_refused_before_any_request(kube, api, breakage, message):
    manifest = standard(U2, live=U1)
    breakage(manifest)
    with pytest.raises(InvalidManifestError, match=message):
        apply_inference_service(manifest, api=api)
    assert kube.requests == []
