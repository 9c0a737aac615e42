"""Rollout operations on one InferenceService: apply, status, promote, rollback, wait, in both modes.

Serverless (Knative): with ``canaryTrafficPercent: N`` on the predictor, the newest revision takes
N% of the traffic and the last fully rolled-out revision keeps the rest. Promote removes the
field (100% to the newest); rollback sets it to 0 (100% back to the previous revision, the new
one kept at 0%).

Standard (RawDeployment): ``spec.predictor`` is the live model and ``spec.canary[0]`` the new one
at ``trafficPercent``. Promote makes the canary's predictor (merged over the stable one, as KServe
runs it) ``spec.predictor`` and removes ``spec.canary``; rollback removes ``spec.canary``.

Apply is a server-side apply (field manager ``textclf-rollout``): the API server keeps fields other
writers own and removes what this tool applied before and the manifest no longer has. Promote and
rollback are JSON merge patches made conditional on the ``resourceVersion`` they read.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

from textclf.inferenceservice import (
    ANNOTATION_OF_MODE,
    CANARY_TRAFFIC,
    MODE_ANNOTATION,
    MODEL_URI_ANNOTATION,
    STANDARD,
    admission_problems,
    canary_entry,
    deployment_mode_of,
    merge_canary,
    model_uri_of,
    predictor_name,
)
from textclf.platform.kube import API_VERSION, InferenceServiceAPI
from textclf.rollout.errors import (
    InferenceServiceNotFoundError,
    InvalidManifestError,
    NoCanaryError,
    WaitTimeoutError,
)
from textclf.rollout.status import RolloutStatus, TrafficTarget

log = logging.getLogger(__name__)


__all__ = [
    "RolloutStatus",
    "TrafficTarget",
    "apply_inference_service",
    "get_status",
    "promote",
    "rollback",
    "serving_model",
    "wait_ready",
]


def apply_inference_service(
    manifest: dict,
    namespace: str | None = None,
    *,
    canary_percent: int | None = None,
    api: InferenceServiceAPI | None = None,
) -> dict:
    """Create the InferenceService, or change the live one so a new model becomes a canary.

    Idempotent: applying what is already live changes nothing (not even ``resourceVersion``).
    Re-applying the model that is already live keeps the live traffic split: a canary share only
    means something for a new model ("new" = another storage URI). On create there is nothing to
    split with, so the model takes all the traffic whatever share the manifest asks for.
    In Standard mode the stable predictor is kept exactly as it runs; only the canary comes from
    the manifest (its ``spec.canary``, or its predictor when it has none). Applying the stable
    predictor's own model while a canary runs ends the canary, as a rollback would.

    Args:
        manifest: a ``serving.kserve.io/v1beta1`` InferenceService as a dict (e.g. the deploy
            step's YAML, loaded).
        namespace: overrides ``metadata.namespace``; else the manifest's, else the client's default.
        canary_percent: when given and the InferenceService serves another model, the new model
            gets this share of the traffic whatever the manifest says.
        api: the cluster client; by default in-cluster config or the kubeconfig.

    Returns:
        The InferenceService as the API server returned it.

    Raises:
        InvalidManifestError, ClusterUnreachableError, CRDNotInstalledError, ConflictError,
        PermissionDeniedError (all ``RolloutError``).
    """
    _check_manifest(manifest)
    if canary_percent is not None:
        _check_percent(canary_percent)
    api = api or InferenceServiceAPI.connect()
    name = manifest["metadata"]["name"]
    namespace = _namespace(manifest, namespace, api)
    live = _get_or_none(api, name, namespace)
    mode = _mode(manifest, live)
    live_spec = live["spec"] if live else None
    if mode == STANDARD:
        spec = _standard_spec(manifest["spec"], live_spec, canary_percent)
    else:
        spec = _serverless_spec(manifest["spec"], live_spec, canary_percent)
    body = _applied_config(manifest, namespace, spec, live)
    result = api.apply(body, namespace)
    if mode != STANDARD and CANARY_TRAFFIC not in spec["predictor"] and CANARY_TRAFFIC in result["spec"]["predictor"]:
        result = _drop_leftover_share(api, result)
    log.info("applied InferenceService %s/%s (%s mode): %s", namespace, name, mode, _describe_split(result, mode))
    return result


def _serverless_spec(desired: dict, live: dict | None, canary_percent: int | None) -> dict:
    spec = copy.deepcopy(desired)
    predictor = spec["predictor"]
    if live is None:
        predictor.pop(CANARY_TRAFFIC, None)  # nothing live to split with
    elif _same_model(live["predictor"], predictor):
        predictor.pop(CANARY_TRAFFIC, None)  # keep the live split
        if CANARY_TRAFFIC in live["predictor"]:
            predictor[CANARY_TRAFFIC] = live["predictor"][CANARY_TRAFFIC]
    elif canary_percent is not None:
        predictor[CANARY_TRAFFIC] = canary_percent
    return spec


def _standard_spec(desired: dict, live: dict | None, canary_percent: int | None) -> dict:
    """The spec to apply in Standard mode, from the manifest and what is live."""
    new = _newest_predictor(desired)
    if live is None:
        return {"predictor": new}  # nothing live to split with
    stable = live["predictor"]
    live_canaries = live.get("canary") or []
    if len(live_canaries) > 1:
        raise InvalidManifestError(
            f"the live InferenceService has {len(live_canaries)} canaries; this tool "
            "rolls out one at a time: promote or roll back first"
        )
    if live_canaries and _same_model(merge_canary(stable, live_canaries[0]["predictor"]), new):
        [canary] = live_canaries  # this model is the canary already: keep its name and share
        return {
            "predictor": stable,
            "canary": [canary_entry(new, canary["predictor"]["name"], canary["trafficPercent"])],
        }
    share = canary_percent if canary_percent is not None else _desired_share(desired)
    if _same_model(stable, new) or share is None:
        # The stable model again (it keeps, or with a canary running takes back, all traffic), or a
        # new one asked to take all traffic at once: the stable predictor is updated in place,
        # under its live name (KServe refuses a name change without a model change).
        in_place = {key: value for key, value in new.items() if key != "name"}
        return {"predictor": {**in_place, **({"name": stable["name"]} if stable.get("name") else {})}}
    name = new.get("name")
    if not name or name == stable.get("name"):
        name = predictor_name(model_uri_of(new) or "")
    return {"predictor": stable, "canary": [canary_entry(new, name, share)]}


def _newest_predictor(spec: dict) -> dict:
    """The predictor serving a manifest's newest model: its canary as KServe runs it, else its predictor."""
    canaries = spec.get("canary") or []
    if not canaries:
        return copy.deepcopy(spec["predictor"])
    return merge_canary(spec["predictor"], canaries[-1]["predictor"])


def _desired_share(spec: dict) -> int | None:
    canaries = spec.get("canary") or []
    return canaries[-1].get("trafficPercent") if canaries else spec["predictor"].get(CANARY_TRAFFIC)


def _same_model(live: dict, new: dict) -> bool:
    """Same storage URI; for predictors without one, the same predictor apart from name and share."""
    live_uri, new_uri = model_uri_of(live), model_uri_of(new)
    if live_uri is not None or new_uri is not None:
        return live_uri == new_uri

    def essence(predictor: dict) -> dict:
        return {k: v for k, v in predictor.items() if k not in ("name", CANARY_TRAFFIC)}

    return essence(live) == essence(new)


def _applied_config(manifest: dict, namespace: str, spec: dict, live: dict | None) -> dict:
    """What this manager owns: labels, annotations and the spec (never status, never other metadata)."""
    metadata = {"name": manifest["metadata"]["name"], "namespace": namespace}
    metadata.update(
        {k: copy.deepcopy(manifest["metadata"][k]) for k in ("labels", "annotations") if k in manifest["metadata"]}
    )
    if live is not None:  # our decisions read the live object: write only if it is still that one
        metadata["resourceVersion"] = live["metadata"]["resourceVersion"]
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": metadata, "spec": spec}


def _drop_leftover_share(api: InferenceServiceAPI, result: dict) -> dict:
    """A new model asked for all traffic, but a share another writer set (a rollback's 0) is still there."""
    meta = result["metadata"]
    log.info(
        "InferenceService %s/%s: removing the canaryTrafficPercent %s another writer left, so the new model "
        "takes all traffic",
        meta["namespace"],
        meta["name"],
        result["spec"]["predictor"][CANARY_TRAFFIC],
    )
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": {"predictor": {CANARY_TRAFFIC: None}}}
    return api.merge_patch(meta["name"], patch, meta["namespace"])


def promote(name: str, namespace: str | None = None, *, api: InferenceServiceAPI | None = None) -> dict:
    """Send 100% of the traffic to the canary. Idempotent.

    Serverless: remove ``canaryTrafficPercent``. Standard: the canary's predictor (merged over the
    stable one, as KServe runs it, under the canary's name so its Deployment carries on) becomes
    ``spec.predictor`` and ``spec.canary`` goes.
    """
    api = api or InferenceServiceAPI.connect()
    namespace = namespace or api.default_namespace
    live = api.get(name, namespace)
    canaries = _one_canary(live, f"InferenceService {namespace}/{name}")
    if canaries:
        stable = merge_canary(live["spec"]["predictor"], canaries[0]["predictor"])
        return _patch_spec(
            api, live, {"predictor": stable, "canary": None}, "promoted, the canary is the stable predictor"
        )
    if CANARY_TRAFFIC not in live["spec"]["predictor"]:
        log.info("InferenceService %s/%s: nothing to promote, the newest model already has 100%%", namespace, name)
        return live
    return _patch_spec(api, live, {"predictor": {CANARY_TRAFFIC: None}}, "promoted, 100% to the newest revision")


def rollback(name: str, namespace: str | None = None, *, api: InferenceServiceAPI | None = None) -> dict:
    """Send 100% of the traffic back to the previous model. Idempotent.

    Serverless: ``canaryTrafficPercent: 0`` (the new revision kept at 0%). Standard: remove
    ``spec.canary`` (KServe deletes its Deployment and gives the stable one its replicas back).

    Raises:
        NoCanaryError: no canary in progress (the newest model serves all traffic); to go
            back then, apply the previous model's manifest.
    """
    api = api or InferenceServiceAPI.connect()
    namespace = namespace or api.default_namespace
    live = api.get(name, namespace)
    if live["spec"].get("canary"):
        return _patch_spec(api, live, {"canary": None}, "rolled back, the canary removed")
    share = live["spec"]["predictor"].get(CANARY_TRAFFIC)
    if share == 0:
        log.info("InferenceService %s/%s: already rolled back (canary at 0%%)", namespace, name)
        return live
    if share is None:
        raise NoCanaryError(
            f"InferenceService {namespace}/{name} has no canary in progress: its newest model "
            "takes 100%; to go back, apply the previous model's manifest"
        )
    return _patch_spec(api, live, {"predictor": {CANARY_TRAFFIC: 0}}, "rolled back, 100% to the previous revision")


def serving_model(isvc: dict) -> str | None:
    """The model URI that takes all of the traffic, or None while a canary splits it (or a
    Serverless rollback sends it to a revision whose model the spec no longer names)."""
    spec = isvc["spec"]
    canaries = spec.get("canary") or []
    if canaries:
        full = [c for c in canaries if c.get("trafficPercent") == 100]
        return model_uri_of(merge_canary(spec["predictor"], full[0]["predictor"])) if full else None
    share = spec["predictor"].get(CANARY_TRAFFIC)
    if share is None or share == 100:
        return model_uri_of(spec["predictor"]) or isvc["metadata"].get("annotations", {}).get(MODEL_URI_ANNOTATION)
    return None


def get_status(name: str, namespace: str | None = None, *, api: InferenceServiceAPI | None = None) -> RolloutStatus:
    api = api or InferenceServiceAPI.connect()
    return RolloutStatus.from_object(api.get(name, namespace or api.default_namespace))


def wait_ready(
    name: str,
    namespace: str | None = None,
    *,
    timeout_s: float = 600.0,
    interval_s: float = 5.0,
    api: InferenceServiceAPI | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutStatus:
    """Poll until the InferenceService is settled (see ``RolloutStatus.settled``).

    Raises:
        WaitTimeoutError: not settled after ``timeout_s``; the message has the last status.
    """
    api = api or InferenceServiceAPI.connect()
    namespace = namespace or api.default_namespace
    deadline = clock() + timeout_s
    while True:
        status = get_status(name, namespace, api=api)
        if status.settled:
            return status
        if clock() >= deadline:
            raise WaitTimeoutError(
                f"InferenceService {namespace}/{name} not ready after {timeout_s:.0f}s:\n{status.describe()}"
            )
        sleep(min(interval_s, max(0.0, deadline - clock())))


def _patch_spec(api: InferenceServiceAPI, live: dict, spec_patch: dict, done: str) -> dict:
    meta = live["metadata"]
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": spec_patch}
    patched = api.merge_patch(meta["name"], patch, meta["namespace"])
    log.info("InferenceService %s/%s: %s", meta["namespace"], meta["name"], done)
    return patched


def _one_canary(isvc: dict, what: str) -> list:
    """``spec.canary`` of ``isvc`` (the manifest or the live InferenceService), refused with more than one."""
    canaries = isvc["spec"].get("canary") or []
    if len(canaries) > 1:
        raise InvalidManifestError(
            f"{what} has more than one spec.canary entry ({len(canaries)}); this tool rolls "
            "out and promotes one at a time: edit spec.canary by hand"
        )
    return canaries


def _describe_split(isvc: dict, mode: str) -> str:
    spec = isvc["spec"]
    if mode == STANDARD:
        canaries = spec.get("canary") or []
        if not canaries:
            return "the stable predictor serves all traffic"
        return ", ".join(f"canary {c['predictor'].get('name')} at {c['trafficPercent']}%" for c in canaries)
    share = spec["predictor"].get(CANARY_TRAFFIC)
    return "the newest revision serves all traffic" if share is None else f"the newest revision at {share}% (canary)"


def _get_or_none(api: InferenceServiceAPI, name: str, namespace: str) -> dict | None:
    try:
        return api.get(name, namespace)
    except InferenceServiceNotFoundError:
        return None


def _mode(manifest: dict, live: dict | None) -> str:
    """The manifest's deployment mode, which must be the live object's (KServe refuses a change)."""
    try:
        wanted, running = deployment_mode_of(manifest), deployment_mode_of(live) if live else None
    except ValueError as error:
        raise InvalidManifestError(str(error)) from error
    if wanted and running and wanted != running:
        raise InvalidManifestError(
            f"the manifest is for {ANNOTATION_OF_MODE[wanted]} mode but the live InferenceService runs in "
            f"{ANNOTATION_OF_MODE[running]} mode, and KServe cannot change the mode of an existing one: "
            "delete it first, or deploy under another name"
        )
    mode = wanted or running
    if mode is None:
        raise InvalidManifestError(
            f"the manifest has no {MODE_ANNOTATION} annotation: set Serverless or Standard "
            "(KServe's default depends on the cluster's inferenceservice-config)"
        )
    return mode


def _check_manifest(manifest: dict) -> None:
    if not isinstance(manifest, dict):
        raise InvalidManifestError(f"manifest must be a mapping, got {type(manifest).__name__}")
    if manifest.get("apiVersion") != API_VERSION or manifest.get("kind") != "InferenceService":
        raise InvalidManifestError(
            f"expected apiVersion {API_VERSION} kind InferenceService, got "
            f"{manifest.get('apiVersion')!r} {manifest.get('kind')!r}"
        )
    if not manifest.get("metadata", {}).get("name"):
        raise InvalidManifestError("manifest has no metadata.name")
    predictor = manifest.get("spec", {}).get("predictor")
    if not isinstance(predictor, dict) or not predictor:
        raise InvalidManifestError("manifest has no spec.predictor")
    if predictor.get(CANARY_TRAFFIC) is not None:
        _check_percent(predictor[CANARY_TRAFFIC])
    for canary in _one_canary(manifest, "the manifest"):
        _check_percent(canary.get("trafficPercent"))
    problems = admission_problems(manifest)
    if problems:
        raise InvalidManifestError("KServe would refuse this manifest: " + "; ".join(problems))


def _check_percent(share) -> None:
    if not isinstance(share, int) or isinstance(share, bool) or not 0 <= share <= 100:
        raise InvalidManifestError(f"{CANARY_TRAFFIC} must be an integer from 0 to 100, got {share!r}")


def _namespace(manifest: dict, namespace: str | None, api: InferenceServiceAPI) -> str:
    own = manifest["metadata"].get("namespace")
    if namespace and own and own != namespace:
        raise InvalidManifestError(
            f"the manifest's namespace {own!r} does not match the namespace asked for {namespace!r}"
        )
    return namespace or own or api.default_namespace
