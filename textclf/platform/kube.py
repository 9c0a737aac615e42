"""InferenceService calls on the Kubernetes custom-objects API, with named errors.

We use the ``kubernetes`` client (the same one ``kserve.KServeClient`` uses, with the same group,
version and plural) rather than ``KServeClient`` itself for two reasons: ``KServeClient`` turns
every ``ApiException`` into a ``RuntimeError`` that carries only text, so "not found", "conflict"
and "forbidden" could not be told apart; and ``import kserve`` parses ``sys.argv`` and takes
seconds, which a CLI and the pipeline's deploy step should not pay.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException

from textclf.rollout.errors import (
    ClusterUnreachableError,
    ConflictError,
    CRDNotInstalledError,
    InferenceServiceNotFoundError,
    InvalidManifestError,
    PermissionDeniedError,
    RolloutError,
)

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "textclf-rollout"
APPLY_PATCH = "application/apply-patch+yaml"
IN_CLUSTER_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclass
class InferenceServiceAPI:
    """get / server-side apply / merge-patch / delete of InferenceServices in one cluster.

    Attributes:
        objects: the kubernetes ``CustomObjectsApi`` bound to the cluster.
        default_namespace: the namespace used when a call names none (kubeconfig context's
            namespace, the pod's namespace in a cluster, else ``default``).
        timeout_s: per-request timeout, so an unreachable API server fails fast.
    """

    objects: client.CustomObjectsApi
    default_namespace: str = "default"
    timeout_s: float = 30.0

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, context: str | None = None, timeout_s: float = 30.0
    ) -> InferenceServiceAPI:
        """Client from a kubeconfig (argument, ``$KUBECONFIG``, ``~/.kube/config``) or in-cluster config.

        In a pod (``KUBERNETES_SERVICE_HOST`` set) with no kubeconfig named, the pod's service
        account is used: that is how the pipeline's deploy step runs.
        """
        configuration = client.Configuration()
        configuration.retries = 1  # fail fast: the default 3 retries make "no cluster" slow
        path = kubeconfig or os.environ.get("KUBECONFIG")
        namespace = None
        if not path and os.environ.get("KUBERNETES_SERVICE_HOST"):
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException as e:
                raise ClusterUnreachableError(f"in-cluster Kubernetes config is unusable: {e}") from e
            if os.path.exists(IN_CLUSTER_NAMESPACE_FILE):
                with open(IN_CLUSTER_NAMESPACE_FILE) as f:
                    namespace = f.read().strip()
        else:
            path = path or os.path.expanduser("~/.kube/config")
            if not any(os.path.exists(p) for p in path.split(os.pathsep)):
                raise ClusterUnreachableError(
                    f"no kubeconfig at {path} and not running in a cluster: run "
                    "`gcloud container clusters get-credentials ...` or pass --kubeconfig"
                )
            try:
                config.load_kube_config(
                    config_file=path,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
                contexts, active = config.list_kube_config_contexts(path)
            except ConfigException as e:
                raise ClusterUnreachableError(f"kubeconfig {path} is unusable: {e}") from e
            chosen = next((c for c in contexts if c["name"] == context), active) if context else active
            namespace = chosen.get("context", {}).get("namespace")
        objects = client.CustomObjectsApi(client.ApiClient(configuration))
        return cls(objects=objects, default_namespace=namespace or "default", timeout_s=timeout_s)

    def get(self, name: str, namespace: str) -> dict:
        return self._call(
            f"get InferenceService {namespace}/{name}",
            self.objects.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )

    def apply(self, body: dict, namespace: str, *, force: bool = True) -> dict:
        """Server-side apply ``body`` as field manager ``textclf-rollout``; creates the object when missing.

        The API server merges by field ownership (``metadata.managedFields``): what this manager
        applied before and ``body`` no longer has is removed, fields other managers own stay, and
        ``force`` takes over fields another manager owns with a different value (without it
        that is a 409). ``fieldValidation=Strict`` makes a field the CRD does not declare an error
        rather than something silently dropped. A ``metadata.resourceVersion`` in ``body`` makes
        the write conditional. The kubernetes client's ``patch_namespaced_custom_object`` cannot
        send the apply content type, hence ``call_api``.
        """
        name = body["metadata"]["name"]
        return self._call(f"apply InferenceService {namespace}/{name}", self._server_side_apply, body, namespace, force)

    def _server_side_apply(self, body: dict, namespace: str, force: bool, _request_timeout: float) -> dict:
        return self.objects.api_client.call_api(
            f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}",
            "PATCH",
            path_params={"namespace": namespace, "name": body["metadata"]["name"]},
            query_params=[
                ("fieldManager", FIELD_MANAGER),
                ("force", "true" if force else "false"),
                ("fieldValidation", "Strict"),
            ],
            header_params={"Content-Type": APPLY_PATCH, "Accept": "application/json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=_request_timeout,
        )

    def merge_patch(self, name: str, patch: dict, namespace: str) -> dict:
        """JSON merge patch (RFC 7386); a ``metadata.resourceVersion`` in it makes the write conditional."""
        return self._call(
            f"patch InferenceService {namespace}/{name}",
            self.objects.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            patch,
            field_manager=FIELD_MANAGER,
        )

    def delete(self, name: str, namespace: str) -> dict:
        return self._call(
            f"delete InferenceService {namespace}/{name}",
            self.objects.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )

    def _call(self, what: str, method, *args, **kwargs) -> dict:
        try:
            return method(*args, _request_timeout=self.timeout_s, **kwargs)
        except ApiException as e:
            raise self._named_error(what, e) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            host = self.objects.api_client.configuration.host
            raise ClusterUnreachableError(f"{what}: cannot reach the Kubernetes API at {host}: {e}") from e

    def _named_error(self, what: str, e: ApiException) -> RolloutError:
        message = _status_message(e)
        if e.status == 404:
            if not self._crd_installed():
                return CRDNotInstalledError(
                    f"{what}: the cluster has no {API_VERSION} {PLURAL} API; install KServe "
                    "(infra/install-platform.sh) first"
                )
            return InferenceServiceNotFoundError(f"{what}: not found ({message})")
        if e.status == 409:
            if _is_field_conflict(e):
                return ConflictError(
                    f"{what}: {message}; these fields belong to another field manager: apply "
                    "with force to take them over, or leave them out of the manifest"
                )
            return ConflictError(f"{what}: conflict ({message}); re-read and retry")
        if e.status in (401, 403):
            return PermissionDeniedError(
                f"{what}: permission denied ({message}); the caller needs the Role in "
                "manifests/setup/rbac-deployer.yaml"
            )
        if e.status in (400, 422):
            return InvalidManifestError(f"{what}: rejected by the API server ({message})")
        return RolloutError(f"{what}: HTTP {e.status} {e.reason}: {message}")

    def _crd_installed(self) -> bool:
        """Ask API discovery whether ``serving.kserve.io/v1beta1`` serves ``inferenceservices``."""
        try:
            resources = self.objects.api_client.call_api(
                f"/apis/{GROUP}/{VERSION}",
                "GET",
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self.timeout_s,
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise self._named_error(f"discover {API_VERSION}", e) from e
        return any(r.get("name") == PLURAL for r in (resources or {}).get("resources", []))


def _status_message(e: ApiException) -> str:
    """The ``message`` of the API server's Status body, or the raw body when it is not one."""
    try:
        return json.loads(e.body).get("message") or e.reason
    except (TypeError, ValueError, AttributeError):
        return (e.body or e.reason or "").strip()


def _is_field_conflict(e: ApiException) -> bool:
    """A server-side apply conflict (another manager owns a field), not a stale resourceVersion."""
    try:
        causes = json.loads(e.body).get("details", {}).get("causes", [])
    except (TypeError, ValueError, AttributeError):
        return False
    return any(c.get("reason") == "FieldManagerConflict" for c in causes)
