"""Zero trust in what the project ships and writes: hardened pods everywhere, cluster-local
predictors, Pod Security ``restricted`` namespaces, default-deny NetworkPolicies whose allow lists
select the pods that exist, and the Istio gateway policies (validated against Istio 1.25.2's own CRD
schemas, tests/fixtures/istio/, strictly).

Rendering needs ``kubectl`` (``kubectl kustomize``); without it these tests skip, saying so. Istio and
Kubernetes cannot run here: what a live gateway does with these objects is not tested.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from functools import lru_cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from security.render import deploy_step_manifests, predictor_pods, shipped_manifests
from tests.rollout.crd import strictify
from textclf.inferenceservice import DeploySettings, build_inference_service

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.33"
ISTIO_SCHEMAS = ROOT / "tests" / "fixtures" / "istio" / "istio-crds-v1.25.2.schema.json"
WORKLOADS = ("Deployment", "CronJob", "Pod")
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH (Debian package kubectl)")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {**shipped_manifests(), **deploy_step_manifests()}


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    """(name, pod spec) of every workload, with each InferenceService predictor as the Pod KServe runs."""
    found = []
    for doc in docs:
        if doc["kind"] == "InferenceService":
            found += [(pod["metadata"]["name"], pod["spec"]) for pod in predictor_pods(doc)]
        elif doc["kind"] == "Deployment":
            found.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "CronJob":
            found.append((doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return found


def hardening_problems(pod: dict, serves: bool) -> list[str]:
    """What Pod Security ``restricted`` and this project's rules refuse in one pod spec.

    Every container: non-root, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault
    (pod or container), read-only root filesystem, resource limits. A serving container also needs
    readiness and liveness probes.
    """
    problems = []
    pod_security = pod.get("securityContext", {})
    for container in pod.get("initContainers", []) + pod["containers"]:
        name, security = container["name"], container.get("securityContext", {})

        def setting(key, security=security):
            return security.get(key, pod_security.get(key))

        if setting("runAsNonRoot") is not True or setting("runAsUser") == 0:
            problems.append(f"{name}: may run as root")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get("capabilities", {}).get("add"):
            problems.append(f"{name}: capabilities are not all dropped")
        if (setting("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if not container.get("resources", {}).get("limits"):
            problems.append(f"{name}: no resource limits")
    for container in pod["containers"] if serves else []:
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                problems.append(f"{container['name']}: no {probe}")
    return problems


def test_every_pod_the_project_ships_or_writes_is_hardened(rendered):
    checked = 0
    for source, docs in rendered.items():
        for name, pod in pod_specs(docs):
            serves = "drift-check" not in name  # a CronJob runs once: nothing to probe
            assert hardening_problems(pod, serves) == [], f"{source}: {name}"
            checked += 1
    assert checked >= 12  # 4 overlays, monitor + CronJob, Prometheus, 2 modes x first/canary (+ Standard canary)


def test_the_hardening_check_notices_each_missing_piece(rendered):
    [(_, pod)] = list(pod_specs(rendered["overlay-cpu"]))
    for path, value in (
        (("securityContext", "readOnlyRootFilesystem"), False),
        (("securityContext", "allowPrivilegeEscalation"), True),
        (("securityContext", "capabilities"), {}),
        (("securityContext", "seccompProfile"), None),
        (("livenessProbe",), None),
    ):
        broken = copy.deepcopy(pod)
        broken.pop("securityContext")  # the pod level would cover seccomp
        target = broken["containers"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        if value is None:
            del target[path[-1]]
        assert hardening_problems(broken, serves=True), path


def test_the_base_predictor_is_hardened_exactly_as_the_deploy_step_writes_it(rendered):
    """manifests/base is for deploying by hand: the same pod as the pipeline's, so neither drifts."""
    [base] = [d for d in rendered["overlay-cpu"] if d["kind"] == "InferenceService"]
    written = build_inference_service("gs://b/m", DeploySettings())
    assert base["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
    for key in ("automountServiceAccountToken", "securityContext", "volumes", "timeout", "containerConcurrency"):
        assert base["spec"]["predictor"][key] == written["spec"]["predictor"][key], key
    mine, theirs = base["spec"]["predictor"]["containers"][0], written["spec"]["predictor"]["containers"][0]
    for key in ("securityContext", "readinessProbe", "livenessProbe", "volumeMounts", "ports"):
        assert mine[key] == theirs[key], key
    # The same flags; by hand the backend is serving.json's (auto), the deploy step names it.
    assert mine["args"][:-1] == theirs["args"][:-1] and theirs["args"][-2] == "--backend"
    assert mine["args"][-1] == "auto" and theirs["args"][-1] == "torch"
    [gpu] = [d for d in rendered["overlay-gpu"] if d["kind"] == "InferenceService"]
    assert gpu["spec"]["predictor"]["containers"][0]["args"][-2:] == ["--backend", "torch"]  # a GPU serves PyTorch


def test_every_inference_service_is_cluster_local(rendered):
    services = [d for docs in rendered.values() for d in docs if d["kind"] == "InferenceService"]
    assert len(services) == 8
    assert all(s["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local" for s in services)


def test_namespaces_enforce_pod_security_restricted(rendered):
    namespaces = {d["metadata"]["name"]: d for docs in rendered.values() for d in docs if d["kind"] == "Namespace"}
    assert {"textclf", "monitoring"} <= namespaces.keys()
    for namespace in namespaces.values():
        labels = namespace["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert namespaces["textclf"]["metadata"]["labels"]["istio-injection"] == "disabled"  # istio-init needs NET_ADMIN


def test_core_objects_validate_strictly(rendered):
    for docs in rendered.values():
        for doc in docs:
            if doc["apiVersion"].startswith(("serving.kserve.io/", "security.istio.io/", "networking.istio.io/")):
                continue
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def policies(docs: list[dict], namespace: str) -> dict[str, dict]:
    return {
        d["metadata"]["name"]: d["spec"]
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == namespace
    }


def selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_serving_namespace_denies_by_default_and_allows_only_the_paths_it_needs(rendered):
    docs = rendered["overlay-cpu-monitored"] + rendered["monitor"]
    textclf = policies(rendered["overlay-cpu"], "textclf")
    assert textclf["default-deny-all"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    predictor_labels = {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}  # KServe's pod label
    workloads = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "CronJob")}
    monitor_labels = workloads["textclf-monitor"]["spec"]["template"]["metadata"]["labels"]
    check_labels = workloads["textclf-drift-check"]["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]

    assert selects(textclf["predictor"]["podSelector"], predictor_labels)
    gateway, activator = textclf["predictor"]["ingress"][0]["from"]
    assert gateway["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "istio-system"}
    assert activator["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "knative-serving"}
    # The monitor hears only the predictor's logger, the drift check and Prometheus.
    assert selects(textclf["monitor"]["podSelector"], monitor_labels)
    sources = textclf["monitor"]["ingress"][0]["from"]
    assert selects(sources[0]["podSelector"], predictor_labels) and selects(sources[1]["podSelector"], check_labels)
    monitor_port = workloads["textclf-monitor"]["spec"]["template"]["spec"]["containers"][0]["ports"][0][
        "containerPort"
    ]
    assert textclf["monitor"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": monitor_port}]
    # The predictor's logger may reach the monitor; the drift check reaches the monitor and the KFP API.
    assert selects(textclf["predictor"]["egress"][0]["to"][0]["podSelector"], monitor_labels)
    assert selects(textclf["drift-check"]["podSelector"], check_labels)
    assert [rule["ports"][0]["port"] for rule in textclf["drift-check"]["egress"]] == [monitor_port, 8888]
    assert textclf["drift-check"].get("ingress") is None and "Ingress" in textclf["drift-check"]["policyTypes"]


def test_pipeline_namespace_denies_ingress_except_its_own_pods_the_drift_check_and_webhooks(rendered):
    kubeflow = policies(rendered["kubeflow-network"], "kubeflow")
    assert kubeflow["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert kubeflow["allow-same-namespace"]["ingress"] == [{"from": [{"podSelector": {}}]}]
    [source] = kubeflow["allow-drift-check-to-api"]["ingress"][0]["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "textclf-drift-check"}
    # Katib's controller (the tune pipeline) serves admission webhooks: only its webhook port is opened.
    katib = kubeflow["allow-control-plane-katib-webhooks"]
    assert katib["podSelector"] == {"matchLabels": {"katib.kubeflow.org/component": "controller"}}
    assert katib["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8443}]


def test_each_workload_has_its_own_service_account_that_exists(rendered):
    accounts = {d["metadata"]["name"]: d for d in rendered["overlay-cpu"] if d["kind"] == "ServiceAccount"}
    pods = dict(pod_specs(rendered["overlay-cpu"] + rendered["monitor"]))
    used = {name: pod["serviceAccountName"] for name, pod in pods.items()}
    assert used == {
        "textclf-predictor": "textclf-serving",
        "textclf-monitor": "textclf-monitor",
        "textclf-drift-check": "textclf-drift-check",
    }
    assert set(used.values()) <= accounts.keys()
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())
    assert all(pod["automountServiceAccountToken"] is False for pod in pods.values())


@lru_cache(maxsize=1)
def istio_validators() -> dict[str, tuple[str, jsonschema.Draft7Validator]]:
    """Istio's schemas, closed like KServe's (tests/rollout/crd.py). They describe spec and status only:
    the API server supplies apiVersion, kind and metadata, so those are added as they are for every kind."""
    validators = {}
    for kind, entry in json.loads(ISTIO_SCHEMAS.read_text()).items():
        if kind.startswith("$"):
            continue
        schema = strictify(copy.deepcopy(entry["openAPIV3Schema"]))
        schema["properties"].update(
            {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
        )
        validators[kind] = (entry["apiVersion"], jsonschema.Draft7Validator(schema))
    return validators


def istio_problems(doc: dict) -> list[str]:
    api_version, validator = istio_validators()[doc["kind"]]
    found = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    return found + (
        [f"apiVersion {doc['apiVersion']} is not {api_version}"] if doc["apiVersion"] != api_version else []
    )


PLACEHOLDERS = {
    "JWT_ISSUER": "https://issuer.example",
    "JWT_JWKS_URI": "https://issuer.example/jwks",
    "JWT_AUDIENCE": "textclf-users",
    "PUBLIC_HOST": "textclf.example.com",
    "CLUSTER_ISSUER": "https://container.googleapis.com/v1/projects/p/locations/z/clusters/c",
    "CLUSTER_JWKS_URI": "https://container.googleapis.com/v1/projects/p/locations/z/clusters/c/jwks",
}


def filled_auth_manifests(rendered) -> list[dict]:
    """manifests/auth with the placeholders replaced in the order infra/install-platform.sh uses."""
    script = (ROOT / "infra" / "install-platform.sh").read_text()
    order = re.findall(r'-e "s#(\w+)#\$\{\w+\}#g"', script)
    assert sorted(order) == sorted(PLACEHOLDERS), order  # the script fills every placeholder
    text = yaml.safe_dump_all(rendered["auth"])
    for name in order:
        text = text.replace(name, PLACEHOLDERS[name])
    assert not any(name in text for name in PLACEHOLDERS)
    return list(yaml.safe_load_all(text))


def test_gateway_policies_fit_istios_crds(rendered):
    docs = filled_auth_manifests(rendered)
    istio = [d for d in docs if d["apiVersion"].split("/")[0].endswith("istio.io")]
    assert {d["kind"] for d in istio} == {
        "RequestAuthentication",
        "AuthorizationPolicy",
        "VirtualService",
        "EnvoyFilter",
    }
    for doc in istio:
        assert istio_problems(doc) == [], doc["kind"]
    broken = copy.deepcopy(next(d for d in istio if d["kind"] == "AuthorizationPolicy"))
    broken["spec"]["rules"][0]["from"][0]["source"]["notRequestPrincipal"] = ["*"]  # misspelt
    assert any("notRequestPrincipal" in problem for problem in istio_problems(broken))


def test_gateways_refuse_anonymous_callers_and_keep_explain_metrics_and_tags_private(rendered):
    docs = {d["kind"]: d for d in filled_auth_manifests(rendered)}
    jwt = docs["RequestAuthentication"]["spec"]
    assert [rule["issuer"] for rule in jwt["jwtRules"]] == [PLACEHOLDERS["JWT_ISSUER"], PLACEHOLDERS["CLUSTER_ISSUER"]]
    assert jwt["jwtRules"][1]["audiences"] == ["textclf"]
    policy = docs["AuthorizationPolicy"]["spec"]
    assert policy["action"] == "DENY" and policy["selector"] == jwt["selector"] == {
        "matchLabels": {"istio": "ingressgateway"}
    }
    anonymous, public, in_cluster, tags, metrics = policy["rules"]
    assert anonymous["from"] == [{"source": {"notRequestPrincipals": ["*"]}}]
    hosts = anonymous["to"][0]["operation"]["hosts"]
    for host in (
        "textclf.example.com",
        "textclf.textclf.svc.cluster.local",
        "textclf-predictor.textclf.svc",
        "latest-textclf-predictor.textclf.svc.cluster.local",
        "prev-textclf-predictor.textclf.svc.cluster.local:80",
    ):
        assert any(host.startswith(pattern.rstrip("*")) for pattern in hosts), host
    # The public route serves exactly the paths the policy leaves open: not :explain, not /metrics.
    route = docs["VirtualService"]["spec"]
    routed = {match["uri"]["exact"] for match in route["http"][0]["match"]}
    assert routed == set(public["to"][0]["operation"]["notPaths"])
    assert not any(path.endswith(":explain") or path.startswith("/metrics") for path in routed)
    assert route["hosts"] == ["textclf.example.com"] and route["http"][0]["rewrite"]["authority"].startswith(
        "textclf.textclf."
    )
    rollout = f"{PLACEHOLDERS['CLUSTER_ISSUER']}/system:serviceaccount:textclf:textclf-rollout"
    assert rollout in in_cluster["from"][0]["source"]["notRequestPrincipals"]
    assert tags["from"][0]["source"]["notRequestPrincipals"] == [rollout]
    assert metrics["to"][0]["operation"]["paths"] == ["/metrics", "/metrics/*"]
    accounts = {d["metadata"]["name"] for d in filled_auth_manifests(rendered) if d["kind"] == "ServiceAccount"}
    assert {"textclf-client", "textclf-rollout"} <= accounts


def test_the_public_host_is_rate_limited_at_the_gateway(rendered):
    [limit] = [d for d in filled_auth_manifests(rendered) if d["kind"] == "EnvoyFilter"]
    route_patch = limit["spec"]["configPatches"][1]
    assert route_patch["match"]["routeConfiguration"]["vhost"]["name"] == "textclf.example.com:80"
    bucket = route_patch["patch"]["value"]["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]["value"][
        "token_bucket"
    ]
    assert bucket == {"max_tokens": 200, "tokens_per_fill": 100, "fill_interval": "1s"}
