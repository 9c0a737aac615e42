"""Rollout operations on one InferenceService: apply, status, promote, rollback, wait.

KServe's canary works on revisions, so it needs Serverless (Knative) deployment mode: with
``canaryTrafficPercent: N`` on the predictor, the newest revision takes N% of the traffic and the
last fully rolled-out revision keeps the rest. Promote removes the field (100% to the newest);
rollback sets it to 0 (100% back to the previous revision, the new one kept at 0%).
In RawDeployment (Standard) mode the field has no effect.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from textclf.rollout.errors import (
    InferenceServiceNotFoundError,
    InvalidManifestError,
    NoCanaryError,
    WaitTimeoutError,
)
from textclf.rollout.kube import API_VERSION, InferenceServiceAPI
from textclf.rollout.merge import three_way_patch

log = logging.getLogger(__name__)

# Where apply remembers what it set, so the next apply can remove what a manifest dropped.
LAST_APPLIED_ANNOTATION = "rollout.textclf.dev/last-applied"
CANARY = "canaryTrafficPercent"


def apply_inference_service(
    manifest: dict,
    namespace: str | None = None,
    *,
    canary_percent: int | None = None,
    api: InferenceServiceAPI | None = None,
) -> dict:
    """Create the InferenceService, or patch the live one so the new model becomes a canary.

    Idempotent: when the live object already matches the manifest nothing is sent. When only
    ``canaryTrafficPercent`` differs (the same model, re-applied after a promote or a rollback),
    the live traffic split is kept: a canary share only means something for a new model.

    Args:
        manifest: a ``serving.kserve.io/v1beta1`` InferenceService as a dict (e.g. the deploy
            step's YAML, loaded).
        namespace: overrides ``metadata.namespace``; else the manifest's, else the client's default.
        canary_percent: when given and the InferenceService exists, the new model gets this
            share of the traffic whatever the manifest says. On create any canary share is
            dropped: with no previous revision the first one takes 100% anyway.
        api: the cluster client; by default in-cluster config or the kubeconfig.

    Returns:
        The InferenceService as the API server returned it.

    Raises:
        InvalidManifestError, ClusterUnreachableError, CRDNotInstalledError, ConflictError,
        PermissionDeniedError (all ``RolloutError``).
    """
    _check_manifest(manifest)
    api = api or InferenceServiceAPI.connect()
    name = manifest["metadata"]["name"]
    namespace = _namespace(manifest, namespace, api)
    desired = _owned_fields(manifest)
    if canary_percent is not None:
        _check_percent(canary_percent)
        desired["spec"]["predictor"][CANARY] = canary_percent
    try:
        live = api.get(name, namespace)
    except InferenceServiceNotFoundError:
        body = copy.deepcopy(manifest)
        body["metadata"]["namespace"] = namespace
        # Nothing is live, so there is nothing to split with: the first revision takes 100%.
        body["spec"]["predictor"].pop(CANARY, None)
        _mark_applied(body, _owned_fields(body))
        created = api.create(body, namespace)
        log.info("created InferenceService %s/%s", namespace, name)
        return created

    last = json.loads(live["metadata"].get("annotations", {}).get(LAST_APPLIED_ANNOTATION, "{}"))
    live_owned = {"metadata": _labels_and_annotations(live), "spec": live.get("spec", {})}
    recorded = copy.deepcopy(desired)
    if _same_model(last, live_owned, desired):
        # Keep the live split: re-applying a model that is already there starts no new canary.
        for fields in (desired, last):
            fields.get("spec", {}).get("predictor", {}).pop(CANARY, None)
            if CANARY in live_owned["spec"].get("predictor", {}):
                fields.get("spec", {}).setdefault("predictor", {})[CANARY] = live_owned["spec"]["predictor"][CANARY]
    target = copy.deepcopy(desired)
    _mark_applied(target, recorded)
    patch = three_way_patch(last, live_owned, target)
    if not patch:
        log.info("InferenceService %s/%s unchanged", namespace, name)
        return live
    patch.setdefault("metadata", {})["resourceVersion"] = live["metadata"]["resourceVersion"]
    patched = api.merge_patch(name, patch, namespace)
    share = patched["spec"]["predictor"].get(CANARY)
    log.info(
        "patched InferenceService %s/%s: %s",
        namespace, name, f"new model takes {share}% (canary)" if share is not None else "100% to the new model",
    )
    return patched


def promote(name: str, namespace: str | None = None, *, api: InferenceServiceAPI | None = None) -> dict:
    """Send 100% of the traffic to the newest revision (remove ``canaryTrafficPercent``). Idempotent."""
    api = api or InferenceServiceAPI.connect()
    namespace = namespace or api.default_namespace
    live = api.get(name, namespace)
    if CANARY not in live["spec"]["predictor"]:
        log.info("InferenceService %s/%s: nothing to promote, the newest revision already has 100%%", namespace, name)
        return live
    return _set_canary(api, live, None)


def rollback(name: str, namespace: str | None = None, *, api: InferenceServiceAPI | None = None) -> dict:
    """Send 100% of the traffic back to the previous revision (``canaryTrafficPercent: 0``). Idempotent.

    Raises:
        NoCanaryError: no canary in progress (the newest revision is fully rolled out); to go
            back then, apply the previous model's manifest.
    """
    api = api or InferenceServiceAPI.connect()
    namespace = namespace or api.default_namespace
    live = api.get(name, namespace)
    share = live["spec"]["predictor"].get(CANARY)
    if share == 0:
        log.info("InferenceService %s/%s: already rolled back (canary at 0%%)", namespace, name)
        return live
    if share is None:
        raise NoCanaryError(
            f"InferenceService {namespace}/{name} has no canary in progress: its newest revision "
            "takes 100%; to go back, apply the previous model's manifest"
        )
    return _set_canary(api, live, 0)


@dataclass
class TrafficTarget:
    revision: str
    percent: int
    tag: str | None = None
    latest: bool = False
    url: str | None = None


@dataclass
class RolloutStatus:
    """What an operator needs to decide: readiness, revisions and the traffic split."""

    name: str
    namespace: str
    ready: bool
    ready_message: str = ""
    url: str | None = None
    canary_percent: int | None = None
    generation: int | None = None
    observed_generation: int | None = None
    latest_created_revision: str | None = None
    latest_ready_revision: str | None = None
    latest_rolled_out_revision: str | None = None
    previous_rolled_out_revision: str | None = None
    traffic: list[TrafficTarget] = field(default_factory=list)

    @classmethod
    def from_object(cls, isvc: dict) -> RolloutStatus:
        status = isvc.get("status", {})
        predictor = status.get("components", {}).get("predictor", {})
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        return cls(
            name=isvc["metadata"]["name"],
            namespace=isvc["metadata"].get("namespace", ""),
            ready=ready.get("status") == "True",
            ready_message=ready.get("message") or ready.get("reason") or "",
            url=status.get("url"),
            canary_percent=isvc.get("spec", {}).get("predictor", {}).get(CANARY),
            generation=isvc["metadata"].get("generation"),
            observed_generation=status.get("observedGeneration"),
            latest_created_revision=predictor.get("latestCreatedRevision"),
            latest_ready_revision=predictor.get("latestReadyRevision"),
            latest_rolled_out_revision=predictor.get("latestRolledoutRevision"),
            previous_rolled_out_revision=predictor.get("previousRolledoutRevision"),
            traffic=[
                TrafficTarget(
                    revision=t.get("revisionName", ""), percent=int(t.get("percent", 0)), tag=t.get("tag"),
                    latest=bool(t.get("latestRevision")), url=t.get("url"),
                )
                for t in predictor.get("traffic", [])
            ],
        )

    @property
    def settled(self) -> bool:
        """Ready at the current generation, with the newest revision itself ready."""
        current = self.generation is None or (self.observed_generation or 0) >= self.generation
        newest_ready = (
            self.latest_created_revision is None
            or self.latest_created_revision == self.latest_ready_revision
        )
        return self.ready and current and newest_ready

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        split = ", ".join(
            f"{t.revision} {t.percent}%" + (f" ({t.tag})" if t.tag else "") for t in self.traffic
        ) or "none reported yet"
        canary = "none (newest revision fully rolled out)" if self.canary_percent is None else f"{self.canary_percent}%"
        lines = [
            f"InferenceService {self.namespace}/{self.name}",
            f"  ready:                 {self.ready}" + (f" ({self.ready_message})" if self.ready_message else ""),
            f"  url:                   {self.url or '-'}",
            f"  canaryTrafficPercent:  {canary}",
            f"  latest ready revision: {self.latest_ready_revision or '-'}"
            + (f" (latest created: {self.latest_created_revision})"
               if self.latest_created_revision not in (None, self.latest_ready_revision) else ""),
            f"  latest rolled out:     {self.latest_rolled_out_revision or '-'}",
            f"  previous rolled out:   {self.previous_rolled_out_revision or '-'}",
            f"  traffic:               {split}",
        ]
        return "\n".join(lines)


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


def _set_canary(api: InferenceServiceAPI, live: dict, share: int | None) -> dict:
    meta = live["metadata"]
    patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "spec": {"predictor": {CANARY: share}}}
    patched = api.merge_patch(meta["name"], patch, meta["namespace"])
    log.info(
        "InferenceService %s/%s: %s", meta["namespace"], meta["name"],
        "promoted, 100% to the newest revision" if share is None else "rolled back, 100% to the previous revision",
    )
    return patched


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
    if predictor.get(CANARY) is not None:
        _check_percent(predictor[CANARY])


def _check_percent(share) -> None:
    if not isinstance(share, int) or isinstance(share, bool) or not 0 <= share <= 100:
        raise InvalidManifestError(f"{CANARY} must be an integer from 0 to 100, got {share!r}")


def _namespace(manifest: dict, namespace: str | None, api: InferenceServiceAPI) -> str:
    own = manifest["metadata"].get("namespace")
    if namespace and own and own != namespace:
        raise InvalidManifestError(
            f"the manifest's namespace {own!r} does not match the namespace asked for {namespace!r}"
        )
    return namespace or own or api.default_namespace


def _labels_and_annotations(obj: dict) -> dict:
    meta = obj.get("metadata", {})
    return {k: copy.deepcopy(meta[k]) for k in ("labels", "annotations") if k in meta}


def _owned_fields(manifest: dict) -> dict:
    """What apply manages: labels, annotations and the spec (never status, never other metadata)."""
    metadata = _labels_and_annotations(manifest)
    metadata.get("annotations", {}).pop(LAST_APPLIED_ANNOTATION, None)
    return {"metadata": metadata, "spec": copy.deepcopy(manifest["spec"])}


def _mark_applied(obj: dict, owned: dict) -> None:
    obj["metadata"].setdefault("annotations", {})[LAST_APPLIED_ANNOTATION] = json.dumps(owned, sort_keys=True)


def _same_model(last: dict, live: dict, desired: dict) -> bool:
    """True when the only predictor difference between ``live`` and ``desired`` is the canary share."""
    def without_canary(fields: dict) -> dict:
        stripped = copy.deepcopy(fields)
        stripped.get("spec", {}).get("predictor", {}).pop(CANARY, None)
        return stripped

    patch = three_way_patch(without_canary(last), without_canary(live), without_canary(desired))
    return "predictor" not in patch.get("spec", {})
