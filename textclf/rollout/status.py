"""What an operator needs to decide about a rollout, read from the InferenceService, in either mode.

Serverless: the traffic split and the revisions are KServe's status (one entry per Knative
revision, with ``prev``/``latest`` tag URLs). Standard: there are no revisions; each predictor
is a Deployment with a Service of the same name (``<service>-<predictor name>-predictor``), so the
split is the spec's ``spec.canary[].trafficPercent``, the readiness ``status.canaryStatuses``, and
the per-predictor URL the cluster-local Service.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from textclf.inferenceservice import (
    CANARY_TRAFFIC,
    SERVERLESS,
    STANDARD,
    deployment_mode_of,
    merge_canary,
    model_uri_of,
    predictor_service_name,
)


@dataclass
class TrafficTarget:
    """Where part of the traffic goes: a Knative revision (Serverless) or a predictor Deployment (Standard)."""

    revision: str
    percent: int
    tag: str | None = None
    latest: bool = False
    url: str | None = None
    ready: bool | None = None
    model_uri: str | None = None


@dataclass
class RolloutStatus:
    """Readiness, the traffic split and the models, whatever the deployment mode."""

    name: str
    namespace: str
    ready: bool
    ready_message: str = ""
    url: str | None = None
    deployment_mode: str = SERVERLESS
    canary_percent: int | None = None
    model_uri: str | None = None  # spec.predictor's model: the canary's (Serverless) or the stable one (Standard)
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
        ready: dict = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        mode = _mode(isvc)
        spec_predictor = isvc.get("spec", {}).get("predictor", {})
        common = {
            "name": isvc["metadata"]["name"],
            "namespace": isvc["metadata"].get("namespace", ""),
            "ready": ready.get("status") == "True",
            "ready_message": ready.get("message") or ready.get("reason") or "",
            "url": status.get("url"),
            "deployment_mode": mode,
            "model_uri": model_uri_of(spec_predictor),
            "generation": isvc["metadata"].get("generation"),
            "observed_generation": status.get("observedGeneration"),
        }
        if mode == STANDARD:
            canaries = isvc.get("spec", {}).get("canary") or []
            return cls(
                **common,
                canary_percent=sum(c.get("trafficPercent", 0) for c in canaries) if canaries else None,
                traffic=_standard_traffic(isvc),
            )
        return cls(
            **common,
            canary_percent=spec_predictor.get(CANARY_TRAFFIC),
            latest_created_revision=predictor.get("latestCreatedRevision"),
            latest_ready_revision=predictor.get("latestReadyRevision"),
            latest_rolled_out_revision=predictor.get("latestRolledoutRevision"),
            previous_rolled_out_revision=predictor.get("previousRolledoutRevision"),
            traffic=[
                TrafficTarget(
                    revision=t.get("revisionName", ""),
                    percent=int(t.get("percent", 0)),
                    tag=t.get("tag"),
                    latest=bool(t.get("latestRevision")),
                    url=t.get("url"),
                )
                for t in predictor.get("traffic", [])
            ],
        )

    @property
    def settled(self) -> bool:
        """Ready at the current generation, with the newest revision (or every canary Deployment) ready."""
        current = self.generation is None or (self.observed_generation or 0) >= self.generation
        newest_ready = (
            self.latest_created_revision is None or self.latest_created_revision == self.latest_ready_revision
        )
        canaries_ready = all(t.ready for t in self.traffic if self.deployment_mode == STANDARD and t.tag == "canary")
        return self.ready and current and newest_ready and canaries_ready

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.deployment_mode == STANDARD:
            return self._describe_standard()
        split = (
            ", ".join(f"{t.revision} {t.percent}%" + (f" ({t.tag})" if t.tag else "") for t in self.traffic)
            or "none reported yet"
        )
        canary = "none (newest revision fully rolled out)" if self.canary_percent is None else f"{self.canary_percent}%"
        lines = [
            f"InferenceService {self.namespace}/{self.name}",
            f"  ready:                 {self.ready}" + (f" ({self.ready_message})" if self.ready_message else ""),
            f"  url:                   {self.url or '-'}",
            f"  canaryTrafficPercent:  {canary}",
            f"  latest ready revision: {self.latest_ready_revision or '-'}"
            + (
                f" (latest created: {self.latest_created_revision})"
                if self.latest_created_revision not in (None, self.latest_ready_revision)
                else ""
            ),
            f"  latest rolled out:     {self.latest_rolled_out_revision or '-'}",
            f"  previous rolled out:   {self.previous_rolled_out_revision or '-'}",
            f"  traffic:               {split}",
        ]
        return "\n".join(lines)

    def _describe_standard(self) -> str:
        stable, *canaries = self.traffic
        lines = [
            f"InferenceService {self.namespace}/{self.name} (Standard mode)",
            f"  ready:                 {self.ready}" + (f" ({self.ready_message})" if self.ready_message else ""),
            f"  url:                   {self.url or '-'}",
            f"  stable predictor:      {stable.revision} {stable.percent}%, model {stable.model_uri or '-'}",
        ]
        lines += [
            f"  canary:                {t.revision} {t.percent}% "
            f"({'ready' if t.ready else 'not ready'}), model {t.model_uri or '-'}"
            for t in canaries
        ] or ["  canary:                none (the stable predictor serves all traffic)"]
        if canaries:
            lines.append("  split:                 by replica count (KServe Standard mode; see README)")
        return "\n".join(lines)


def _mode(isvc: dict) -> str:
    """The annotation's (or status's) mode; else a spec.canary means Standard, anything else Serverless."""
    try:
        mode = deployment_mode_of(isvc)
    except ValueError:
        mode = None
    if mode:
        return mode
    return STANDARD if isvc.get("spec", {}).get("canary") else SERVERLESS


def _standard_traffic(isvc: dict) -> list[TrafficTarget]:
    name, namespace = isvc["metadata"]["name"], isvc["metadata"].get("namespace", "")
    stable = isvc.get("spec", {}).get("predictor", {})
    canaries = isvc.get("spec", {}).get("canary") or []
    status = isvc.get("status", {})
    canary_ready = {c.get("name"): bool(c.get("ready")) for c in status.get("canaryStatuses", [])}
    predictor_ready = next(
        (c.get("status") == "True" for c in status.get("conditions", []) if c.get("type") == "PredictorReady"), None
    )

    def target(predictor: dict, percent: int, tag: str, ready: bool | None) -> TrafficTarget:
        service = predictor_service_name(name, predictor.get("name"))
        return TrafficTarget(
            revision=service,
            percent=percent,
            tag=tag,
            latest=tag == "canary" or not canaries,
            url=f"http://{service}.{namespace}.svc.cluster.local",
            ready=ready,
            model_uri=model_uri_of(predictor),
        )

    total = sum(c.get("trafficPercent", 0) for c in canaries)
    targets = [target(stable, 100 - total, "stable", predictor_ready)]
    for canary in canaries:
        running = merge_canary(stable, canary.get("predictor", {}))
        targets.append(
            target(
                running,
                canary.get("trafficPercent", 0),
                "canary",
                canary_ready.get(canary.get("predictor", {}).get("name"), False),
            )
        )
    return targets
