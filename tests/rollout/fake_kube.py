"""A fake Kubernetes API server on loopback, serving KServe's InferenceService custom objects.

It stands in for a cluster that cannot run here (no Kubernetes, no Docker, no network): the
rollout code talks to it through the real ``kubernetes`` client over real HTTP, from a real
kubeconfig, so what is tested is the wire: paths, verbs, content types, bodies, status codes.

What it implements, as kube-apiserver does for a CRD with a status subresource:
- discovery ``GET /apis/serving.kserve.io/v1beta1`` (404 when the CRD is "not installed");
- ``GET``/``POST``/``DELETE`` and ``PATCH`` on
  ``/apis/serving.kserve.io/v1beta1/namespaces/NS/inferenceservices[/NAME]``, the PATCH either a
  JSON merge patch (``application/merge-patch+json``) or a **server-side apply**
  (``application/apply-patch+yaml`` with ``fieldManager`` and ``force``): ``metadata.managedFields``
  per manager and operation (Apply vs Update), fields a manager applied before and now omits
  removed unless another manager owns them, a 409 naming the conflicting managers and fields when
  another manager owns a field the apply changes and ``force`` is not set, CRD lists atomic, and
  create-on-apply (201) when the object does not exist. The rules are in fake_fields.py;
- the CRD's OpenAPI schema (KServe v0.20.0, see crd.py): unknown fields pruned, or refused (400)
  with ``fieldValidation=Strict``; wrong types and missing required fields refused (422 Invalid);
- ``resourceVersion`` bumped on every change (a no-op apply changes nothing), ``generation`` on
  spec changes; a write carrying a stale ``metadata.resourceVersion`` answered 409 Conflict, a
  create of an existing name 409 AlreadyExists, a missing object 404 NotFound, all as ``Status``;
- ``status`` ignored on writes to the main resource (it is a subresource); tests set it with
  ``set_status``;
- a bearer token check (401 without it) and a ``forbidden`` switch (403).
What it does not: admission webhooks (KServe's defaulting and validation), Knative, controllers.
Tests play the controller with ``set_status`` and other writers with ``edit``.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.rollout import crd, fake_fields

GROUP_VERSION = crd.API_VERSION
TOKEN = "fake-token"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_OBJECT_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/]+))?$"
)
# Set by the server, never by a write (metadata.managedFields only through field management).
_SERVER_METADATA = ("resourceVersion", "generation", "uid", "name", "namespace", "creationTimestamp", "managedFields")


@dataclass
class Request:
    method: str
    path: str
    query: str
    content_type: str | None
    body: dict | None

    @property
    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query).items()}


def _merge(target, patch):
    """RFC 7386, written separately from the code under test so the two can disagree."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _status(code: int, reason: str, message: str, name: str | None = None, causes: list | None = None) -> dict:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if name or causes:
        body["details"] = {
            "name": name,
            "group": "serving.kserve.io",
            "kind": "inferenceservices",
            **({"causes": causes} if causes else {}),
        }
    return body


def _modified(name: str) -> tuple[int, dict]:
    return 409, _status(
        409,
        "Conflict",
        f"Operation cannot be fulfilled on inferenceservices.serving.kserve.io "
        f'"{name}": the object has been modified; please apply your '
        "changes to the latest version and try again",
        name,
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _without_managed_fields(obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


class FakeKubeAPI:
    """The fake server: ``with FakeKubeAPI() as kube: ...`` then ``kube.kubeconfig(path)``."""

    def __init__(self, crd_installed: bool = True):
        self.crd_installed = crd_installed
        self.forbidden = False
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[Request] = []
        self.before: dict[str, Callable[[], None]] = {}  # method -> hook run before handling it once
        self._version = 100
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def kubeconfig(self, path: Path, namespace: str = "models") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    # --- test-side controls (play the KServe controller / another writer) ---

    def seed(self, obj: dict, manager: str = "kubectl-create") -> dict:
        """Store an object as if ``manager`` had created it earlier (a non-apply create)."""
        with self._lock:
            obj = copy.deepcopy(obj)
            meta = obj["metadata"]
            meta.setdefault("namespace", "models")
            meta.update(uid=str(uuid.uuid4()), generation=1, resourceVersion=self._next_version())
            self._record_update(obj, {}, obj, manager)
            self.objects[(meta["namespace"], meta["name"])] = obj
            return copy.deepcopy(obj)

    def get(self, namespace: str, name: str) -> dict:
        return copy.deepcopy(self.objects[(namespace, name)])

    def set_status(self, namespace: str, name: str, status: dict) -> None:
        """Write the status as KServe's controller would; it must fit the CRD's status schema."""
        errors = [e.message for e in crd.loose_validator().iter_errors({"status": status})]
        assert not errors, f"a status KServe's CRD would refuse: {errors}"
        with self._lock:
            obj = self.objects[(namespace, name)]
            obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = self._next_version()

    def edit(self, namespace: str, name: str, change: Callable[[dict], None], manager: str = "kubectl-edit") -> None:
        """Another writer changes the object with a non-apply update (it then owns what it changed)."""
        with self._lock:
            obj = self.objects[(namespace, name)]
            before = copy.deepcopy(obj)
            change(obj)
            self._record_update(obj, before, obj, manager)
            if obj.get("spec") != before.get("spec"):
                obj["metadata"]["generation"] += 1
            obj["metadata"]["resourceVersion"] = self._next_version()

    def managers(self, namespace: str, name: str) -> dict[tuple[str, str], set[tuple[str, ...]]]:
        """``metadata.managedFields`` read back: (manager, operation) -> owned field paths."""
        return fake_fields.Ownership.of(self.objects[(namespace, name)]).owners

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")]

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    # --- HTTP ---

    def _handle(self, method: str, path: str, query: str, headers, body: dict | None) -> tuple[int, object]:
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if self.forbidden:
            return 403, _status(
                403,
                "Forbidden",
                f'inferenceservices is forbidden: User "system:serviceaccount:'
                f'kubeflow:pipeline-runner" cannot {method.lower()} resource',
            )
        if path == f"/apis/{GROUP_VERSION}" and method == "GET":
            if not self.crd_installed:
                return 404, "404 page not found\n"
            return 200, {
                "kind": "APIResourceList",
                "groupVersion": GROUP_VERSION,
                "resources": [
                    {"name": "inferenceservices", "namespaced": True, "kind": "InferenceService"},
                    {"name": "inferenceservices/status", "namespaced": True, "kind": "InferenceService"},
                ],
            }
        match = _OBJECT_PATH.match(path)
        if not match or not self.crd_installed:
            return 404, "404 page not found\n"
        ns, name = match["ns"], match["name"]
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        # kube-apiserver names a manager that gave no fieldManager after its user agent's product.
        manager = params.get("fieldManager") or (headers.get("User-Agent") or "unknown").split("/")[0]
        with self._lock:
            if method == "POST" and name is None:
                return self._create(ns, body, params, manager)
            if name is None:
                return 405, _status(405, "MethodNotAllowed", "not supported here")
            obj = self.objects.get((ns, name))
            content_type = headers.get("Content-Type")
            if method == "PATCH" and content_type == APPLY_PATCH:
                return self._apply(ns, name, obj, body, params)
            if method == "PATCH" and content_type != MERGE_PATCH:
                return 415, _status(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - "
                    f"accepted media types include: {MERGE_PATCH}, {APPLY_PATCH}",
                )
            if obj is None:
                return 404, _status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found', name)
            if method == "GET":
                return 200, copy.deepcopy(obj)
            if method == "PATCH":
                return self._patch(obj, body, params, manager)
            if method == "DELETE":
                del self.objects[(ns, name)]
                return 200, {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Success",
                    "details": {"name": name, "kind": "inferenceservices"},
                }
        return 405, _status(405, "MethodNotAllowed", f"{method} not supported")

    def _create(self, ns: str, body: dict, params: dict, manager: str) -> tuple[int, dict]:
        name = body["metadata"]["name"]
        if (ns, name) in self.objects:
            return 409, _status(
                409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{name}" already exists', name
            )
        obj = self._incoming(body)
        refused = self._refuse_unknown(obj, params) or self._refuse_invalid(obj, name)
        if refused:
            return refused
        obj["metadata"].update(
            namespace=ns,
            uid=str(uuid.uuid4()),
            generation=1,
            resourceVersion=self._next_version(),
            creationTimestamp=_now(),
        )
        self._record_update(obj, {}, obj, manager)
        self.objects[(ns, name)] = obj
        return 201, copy.deepcopy(obj)

    def _patch(self, obj: dict, patch: dict, params: dict, manager: str) -> tuple[int, dict]:
        meta = obj["metadata"]
        if "force" in params:
            return 400, _status(
                400, "BadRequest", "force: Invalid value: true: may not be specified for non-apply patch"
            )
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != meta["resourceVersion"]:
            return _modified(meta["name"])
        updated = _merge(obj, self._incoming(patch))
        refused = self._refuse_unknown(updated, params) or self._refuse_invalid(updated, meta["name"])
        if refused:
            return refused
        self._record_update(updated, obj, updated, manager)
        return self._store(obj, updated)

    def _apply(self, ns: str, name: str, obj: dict | None, body: dict, params: dict) -> tuple[int, dict]:
        """Server-side apply: create when missing, else merge by field ownership (fake_fields.py)."""
        manager, force = params.get("fieldManager"), params.get("force") == "true"
        if not manager:
            return 400, _status(400, "BadRequest", "PATCH /apply requires fieldManager to be set")
        if "force" in params and params["force"] not in ("true", "false"):
            return 400, _status(400, "BadRequest", f"invalid force value {params['force']!r}")
        if (body.get("apiVersion"), body.get("kind")) != (GROUP_VERSION, "InferenceService"):
            return 400, _status(
                400,
                "BadRequest",
                f"apply needs apiVersion {GROUP_VERSION} and kind InferenceService, "
                f"got {body.get('apiVersion')!r} {body.get('kind')!r}",
            )
        if (body.get("metadata") or {}).get("name") != name:
            return 400, _status(
                400,
                "BadRequest",
                f"the name of the object ({(body.get('metadata') or {}).get('name')}) "
                f"does not match the name on the URL ({name})",
            )
        precondition = body["metadata"].get("resourceVersion")
        if obj is not None and precondition is not None and precondition != obj["metadata"]["resourceVersion"]:
            return _modified(name)
        if obj is None and precondition is not None:
            return 500, _status(
                500, "InternalError", "fake: a resourceVersion precondition on create-by-apply is not modelled"
            )
        applied = self._incoming(body)
        untracked = set(applied["metadata"]) - set(fake_fields.TRACKED_METADATA)
        if untracked:
            return 500, _status(500, "InternalError", f"fake: applying metadata {sorted(untracked)} is not modelled")
        refused = self._refuse_unknown(applied, params)
        if refused:
            return refused
        try:
            result, ownership = fake_fields.server_side_apply(obj or {}, applied, manager, force)
        except fake_fields.ApplyConflict as conflict:
            return 409, _status(409, "Conflict", conflict.message(), name, conflict.causes())
        except fake_fields.NotModelled as e:
            return 500, _status(500, "InternalError", f"fake: {e}")
        result.update(apiVersion=GROUP_VERSION, kind="InferenceService")
        refused = self._refuse_invalid(result, name)
        if refused:
            return refused
        result["metadata"]["managedFields"] = ownership.entries(GROUP_VERSION, _now())
        if obj is None:
            result["metadata"].update(
                name=name,
                namespace=ns,
                uid=str(uuid.uuid4()),
                generation=1,
                resourceVersion=self._next_version(),
                creationTimestamp=_now(),
            )
            self.objects[(ns, name)] = result
            return 201, copy.deepcopy(result)
        if ownership.owners == fake_fields.Ownership.of(obj).owners:
            result["metadata"]["managedFields"] = obj["metadata"].get("managedFields", [])  # no-op: times kept too
        return self._store(obj, result)

    def _store(self, obj: dict, updated: dict) -> tuple[int, dict]:
        if updated != obj:
            meta = obj["metadata"]
            if updated.get("spec") != obj.get("spec"):
                updated["metadata"]["generation"] = meta["generation"] + 1
            updated["metadata"]["resourceVersion"] = self._next_version()
            obj.clear()
            obj.update(updated)
        return 200, copy.deepcopy(obj)

    def _incoming(self, body: dict) -> dict:
        """A write's body as the API server keeps it: no status (a subresource), no server-set metadata."""
        body = copy.deepcopy(body)
        body.pop("status", None)
        for server_set in _SERVER_METADATA:
            (body.get("metadata") or {}).pop(server_set, None)
        return body

    def _refuse_unknown(self, obj: dict, params: dict) -> tuple[int, dict] | None:
        """Fields the CRD does not declare: refused with fieldValidation=Strict, else pruned (as the API server
        does)."""
        unknown = crd.unknown_fields(obj)
        if not unknown:
            return None
        if params.get("fieldValidation") == "Strict":
            return 400, _status(
                400,
                "BadRequest",
                'InferenceService in version "v1beta1" cannot be handled as a '
                "InferenceService: strict decoding error: "
                + ", ".join(f'unknown field "{p.lstrip(".")}"' for p in unknown),
            )
        for path in unknown:
            *parents, last = path.lstrip(".").split(".")
            target = obj
            for key in parents:
                target = target[int(key)] if isinstance(target, list) else target[key]
            target.pop(last, None)
        return None

    def _refuse_invalid(self, obj: dict, name: str) -> tuple[int, dict] | None:
        """The schema's types, bounds and required fields; status is the status writer's (set_status checks it)."""
        spec_and_metadata = {k: v for k, v in obj.items() if k != "status"}
        errors = sorted(
            crd.loose_validator().iter_errors(spec_and_metadata), key=lambda e: list(map(str, e.absolute_path))
        )
        if not errors:
            return None
        details = "; ".join(f"{'.'.join(map(str, e.absolute_path))}: Invalid value: {e.message}" for e in errors)
        return 422, _status(422, "Invalid", f'InferenceService.serving.kserve.io "{name}" is invalid: {details}', name)

    def _record_update(self, target: dict, before: dict, after: dict, manager: str) -> None:
        ownership = fake_fields.Ownership.of(before)
        ownership.record_update((manager, fake_fields.UPDATE), before, after)
        if ownership.owners == fake_fields.Ownership.of(before).owners:  # a no-op keeps its entries (and times)
            target["metadata"]["managedFields"] = copy.deepcopy(before.get("metadata", {}).get("managedFields", []))
        else:
            target["metadata"]["managedFields"] = ownership.entries(GROUP_VERSION, _now())

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                # An apply body is YAML (JSON is YAML too); every other body is JSON.
                body = (
                    (yaml.safe_load if self.headers.get("Content-Type") == APPLY_PATCH else json.loads)(raw)
                    if raw
                    else None
                )
                fake.requests.append(
                    Request(self.command, parts.path, parts.query, self.headers.get("Content-Type"), body)
                )
                hook = fake.before.pop(self.command, None)
                if hook:
                    hook()
                code, payload = fake._handle(self.command, parts.path, parts.query, self.headers, body)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

            def log_message(self, *args):
                pass

        return Handler
