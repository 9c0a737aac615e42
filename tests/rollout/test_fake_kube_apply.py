"""The fake API server's server-side apply, driven through the real kubernetes client and our client.

No cluster can run here, so the rollout tests rest on the fake (fake_kube.py, rules in
fake_fields.py); these tests pin what it does the way kube-apiserver does it for a CRD, so the
rollout tests cannot pass on a fake that merges some simpler way: managed fields per manager and
operation, removal of what a manager stops applying, conflicts, atomic lists, create-on-apply,
and the CRD schema (KServe v0.20.0) on every write.
"""

from __future__ import annotations

import copy

import pytest

from tests.rollout.conftest import NAMESPACE, isvc_manifest
from textclf.platform.kube import APPLY_PATCH, FIELD_MANAGER
from textclf.rollout import ConflictError, InvalidManifestError

SPEC = ("spec", "predictor")


def owned(kube, manager=FIELD_MANAGER, operation="Apply"):
    return kube.managers(NAMESPACE, "textclf").get((manager, operation), set())


def apply_as(api, body, manager, force=False):
    """A server-side apply as some other field manager (kubectl, a controller, a person)."""
    return api.objects.api_client.call_api(
        f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/textclf",
        "PATCH",
        query_params=[("fieldManager", manager), ("force", str(force).lower())],
        header_params={"Content-Type": APPLY_PATCH, "Accept": "application/json"},
        body=body,
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


def test_apply_creates_and_records_the_managers_fields(kube, api):
    created = api.apply(isvc_manifest(), NAMESPACE)

    request = kube.requests[-1]
    assert (request.method, request.content_type) == ("PATCH", APPLY_PATCH)
    assert request.params == {"fieldManager": "textclf-rollout", "force": "true", "fieldValidation": "Strict"}
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    [entry] = created["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == ("textclf-rollout", "Apply", "FieldsV1")
    predictor = entry["fieldsV1"]["f:spec"]["f:predictor"]
    assert predictor["f:containers"] == {}  # a CRD list without list-type is atomic: owned whole
    assert entry["fieldsV1"]["f:metadata"]["f:labels"] == {"f:app": {}}
    assert "f:name" not in entry["fieldsV1"]["f:metadata"]  # identity is nobody's field


def test_reapplying_the_same_config_writes_nothing(kube, api):
    first = api.apply(isvc_manifest(), NAMESPACE)
    again = api.apply(isvc_manifest(), NAMESPACE)
    assert again == first  # resourceVersion, generation, managedFields times: all unchanged


def test_omitted_fields_go_unless_another_manager_owns_them(kube, api):
    manifest = isvc_manifest()
    manifest["spec"]["predictor"].update(timeout=60, logger={"mode": "all", "url": "http://monitor/"})
    api.apply(manifest, NAMESPACE)
    # kubectl applies the same timeout too: the field now has two owners.
    apply_as(
        api,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "textclf"},
            "spec": {"predictor": {"timeout": 60}},
        },
        "kubectl",
    )

    after = api.apply(isvc_manifest(), NAMESPACE)

    predictor = after["spec"]["predictor"]
    assert "logger" not in predictor  # ours alone: removed (and its emptied parent with it)
    assert predictor["timeout"] == 60  # shared with kubectl: stays
    assert SPEC + ("timeout",) not in owned(kube) and SPEC + ("timeout",) in owned(kube, "kubectl")


def test_a_conflict_names_the_managers_and_fields_and_force_takes_them(kube, api):
    api.apply(isvc_manifest(), NAMESPACE)
    kube.edit(NAMESPACE, "textclf", lambda o: o["spec"]["predictor"].update(minReplicas=2, maxReplicas=5))
    assert owned(kube, "kubectl-edit", "Update") == {SPEC + ("minReplicas",), SPEC + ("maxReplicas",)}
    assert SPEC + ("minReplicas",) not in owned(kube)  # an update takes what it changed

    with pytest.raises(ConflictError) as error:
        api.apply(isvc_manifest(), NAMESPACE, force=False)
    message = str(error.value)
    assert 'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using serving.kserve.io/v1beta1' in message
    assert "- .spec.predictor.maxReplicas\n- .spec.predictor.minReplicas" in message
    assert "apply with force" in message
    assert kube.requests[-1].params["force"] == "false"
    assert kube.get(NAMESPACE, "textclf")["spec"]["predictor"]["minReplicas"] == 2

    forced = api.apply(isvc_manifest(), NAMESPACE)
    assert forced["spec"]["predictor"]["minReplicas"] == 1
    assert ("kubectl-edit", "Update") not in kube.managers(NAMESPACE, "textclf")


def test_same_value_is_no_conflict(kube, api):
    api.apply(isvc_manifest(), NAMESPACE)
    apply_as(
        api,
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "textclf"},
            "spec": {"predictor": {"minReplicas": 1}},
        },
        "hpa-tuner",
    )
    api.apply(isvc_manifest(), NAMESPACE, force=False)
    assert SPEC + ("minReplicas",) in owned(kube) and SPEC + ("minReplicas",) in owned(kube, "hpa-tuner")


def test_an_atomic_list_is_replaced_whole(kube, api):
    api.apply(isvc_manifest(), NAMESPACE)
    sidecar = {"name": "sidecar", "image": "busybox"}
    kube.edit(NAMESPACE, "textclf", lambda o: o["spec"]["predictor"]["containers"].append(sidecar))
    assert owned(kube, "kubectl-edit", "Update") == {SPEC + ("containers",)}

    after = api.apply(isvc_manifest("gs://bucket/models/run-2"), NAMESPACE)

    assert [c["name"] for c in after["spec"]["predictor"]["containers"]] == ["kserve-container"]


def test_a_merge_patch_is_an_update_by_its_field_manager(kube, api):
    api.apply(isvc_manifest(canary=10), NAMESPACE)
    live = kube.get(NAMESPACE, "textclf")
    api.merge_patch(
        "textclf",
        {
            "metadata": {"resourceVersion": live["metadata"]["resourceVersion"]},
            "spec": {"predictor": {"canaryTrafficPercent": 0}},
        },
        NAMESPACE,
    )
    assert owned(kube, FIELD_MANAGER, "Update") == {SPEC + ("canaryTrafficPercent",)}
    assert SPEC + ("canaryTrafficPercent",) not in owned(kube)


def test_strict_field_validation_refuses_a_misspelt_field(kube, api):
    manifest = isvc_manifest()
    manifest["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(InvalidManifestError, match=r'strict decoding error: unknown field "spec.predictor.minReplica"'):
        api.apply(manifest, NAMESPACE)
    assert kube.objects == {}


def test_without_strict_validation_unknown_fields_are_pruned(kube, api):
    body = isvc_manifest()
    body["spec"]["predictor"]["minReplica"] = 1
    created = apply_as(api, body, "kubectl")
    assert "minReplica" not in created["spec"]["predictor"]


def test_the_crd_schema_refuses_wrong_types(kube, api):
    manifest = isvc_manifest()
    manifest["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(
        InvalidManifestError, match=r"spec.predictor.minReplicas: Invalid value: 'one' is not of type 'integer'"
    ):
        api.apply(manifest, NAMESPACE)
    canary = isvc_manifest()
    canary["spec"]["canary"] = [{"trafficPercent": 150, "predictor": {"name": "c"}}]
    with pytest.raises(InvalidManifestError, match="150 is greater than the maximum of 100"):
        api.apply(canary, NAMESPACE)


def test_status_in_an_applied_body_is_ignored(kube, api):
    body = copy.deepcopy(isvc_manifest())
    body["status"] = {"url": "http://made-up"}
    assert "status" not in api.apply(body, NAMESPACE)


def test_a_stale_resource_version_in_the_applied_body_is_a_conflict(kube, api):
    first = api.apply(isvc_manifest(), NAMESPACE)
    kube.edit(NAMESPACE, "textclf", lambda o: o["metadata"]["labels"].update(team="x"))
    stale = isvc_manifest()
    stale["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"]
    with pytest.raises(ConflictError, match="the object has been modified"):
        api.apply(stale, NAMESPACE)
