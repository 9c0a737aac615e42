"""A fake Kubernetes API server on loopback, serving KServe's InferenceService custom objects.

It stands in for a cluster that cannot run here (no Kubernetes, no Docker, no network): the
rollout code talks to it through the real ``kubernetes`` client over real HTTP, from a real
kubeconfig, so what is tested is the wire: paths, verbs, content types, bodies, status codes.

What it implements, as kube-apiserver does for a CRD with a status subresource:
- discovery ``GET /apis/serving.kserve.io/v1beta1`` (404 when the CRD is "not installed");
- ``GET``/``POST``/``PATCH`` (``application/merge-patch+json`` only)/``DELETE`` on
  ``/apis/serving.kserve.io/v1beta1/namespaces/NS/inferenceservices[/NAME]``;
- ``resourceVersion`` bumped on every change, ``generation`` bumped on spec changes, a patch
  carrying a stale ``metadata.resourceVersion`` answered 409 Conflict, a create of an existing
  name 409 AlreadyExists, a missing object 404 NotFound, all as ``Status`` bodies;
- ``status`` ignored on create/patch (it is a subresource); tests set it with ``set_status``;
- a bearer token check (401 without it) and a ``forbidden`` switch (403).
What it does not: webhooks, Knative, controllers. Tests play the controller with ``set_status``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

GROUP_VERSION = "serving.kserve.io/v1beta1"
TOKEN = "fake-token"
_OBJECT_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/]+))?$"
)


@dataclass
class Request:
    method: str
    path: str
    query: str
    content_type: str | None
    body: dict | None


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


def _status(code: int, reason: str, message: str, name: str | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if name:
        body["details"] = {"name": name, "group": "serving.kserve.io", "kind": "inferenceservices"}
    return body


class FakeKubeAPI:
    """The fake server: ``with FakeKubeAPI() as kube: ...`` then ``kube.kubeconfig(path)``."""

    def __init__(self, crd_installed: bool = True):
        self.crd_installed = crd_installed
        self.forbidden = False
        self.objects: dict[tuple[str, str], dict] = {}
        self.requests: list[Request] = []
        self.before: dict[str, Callable[[], None]] = {}  # method -> hook run before handling it once
        self._version = 100
        self._lock = threading.Lock()
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
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        }
        path.write_text(json.dumps(config))
        return path

    # --- test-side controls (play the KServe controller / another writer) ---

    def seed(self, obj: dict) -> dict:
        """Store an object as if created earlier (by anyone)."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        meta.setdefault("namespace", "models")
        meta.update(uid=str(uuid.uuid4()), generation=1, resourceVersion=self._next_version())
        self.objects[(meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def get(self, namespace: str, name: str) -> dict:
        return copy.deepcopy(self.objects[(namespace, name)])

    def set_status(self, namespace: str, name: str, status: dict) -> None:
        with self._lock:
            obj = self.objects[(namespace, name)]
            obj["status"] = copy.deepcopy(status)
            obj["metadata"]["resourceVersion"] = self._next_version()

    def edit(self, namespace: str, name: str, change: Callable[[dict], None]) -> None:
        """Another writer changes the object (bumps resourceVersion, and generation if spec changed)."""
        with self._lock:
            obj = self.objects[(namespace, name)]
            spec = copy.deepcopy(obj.get("spec"))
            change(obj)
            if obj.get("spec") != spec:
                obj["metadata"]["generation"] += 1
            obj["metadata"]["resourceVersion"] = self._next_version()

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
            return 403, _status(403, "Forbidden", f'inferenceservices is forbidden: User "system:serviceaccount:'
                                                 f'kubeflow:pipeline-runner" cannot {method.lower()} resource')
        if path == f"/apis/{GROUP_VERSION}" and method == "GET":
            if not self.crd_installed:
                return 404, "404 page not found\n"
            return 200, {"kind": "APIResourceList", "groupVersion": GROUP_VERSION,
                         "resources": [{"name": "inferenceservices", "namespaced": True, "kind": "InferenceService"},
                                       {"name": "inferenceservices/status", "namespaced": True,
                                        "kind": "InferenceService"}]}
        match = _OBJECT_PATH.match(path)
        if not match or not self.crd_installed:
            return 404, "404 page not found\n"
        ns, name = match["ns"], match["name"]
        with self._lock:
            if method == "POST" and name is None:
                return self._create(ns, body)
            if name is None:
                return 405, _status(405, "MethodNotAllowed", "not supported here")
            obj = self.objects.get((ns, name))
            if obj is None:
                return 404, _status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found', name)
            if method == "GET":
                return 200, copy.deepcopy(obj)
            if method == "PATCH":
                if headers.get("Content-Type") != "application/merge-patch+json":
                    return 415, _status(415, "UnsupportedMediaType", f"unsupported patch type {headers.get('Content-Type')}")
                return self._patch(obj, body)
            if method == "DELETE":
                del self.objects[(ns, name)]
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                             "details": {"name": name, "kind": "inferenceservices"}}
        return 405, _status(405, "MethodNotAllowed", f"{method} not supported")

    def _create(self, ns: str, body: dict) -> tuple[int, dict]:
        name = body["metadata"]["name"]
        if (ns, name) in self.objects:
            return 409, _status(409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{name}" already exists', name)
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        obj["metadata"].update(namespace=ns, uid=str(uuid.uuid4()), generation=1,
                               resourceVersion=self._next_version(), creationTimestamp="2026-01-01T00:00:00Z")
        self.objects[(ns, name)] = obj
        return 201, copy.deepcopy(obj)

    def _patch(self, obj: dict, patch: dict) -> tuple[int, dict]:
        meta = obj["metadata"]
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != meta["resourceVersion"]:
            return 409, _status(409, "Conflict", f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io '
                                                 f'"{meta["name"]}": the object has been modified; please apply your '
                                                 "changes to the latest version and try again", meta["name"])
        patch = copy.deepcopy(patch)
        patch.pop("status", None)
        for server_owned in ("resourceVersion", "generation", "uid", "name", "namespace", "creationTimestamp"):
            (patch.get("metadata") or {}).pop(server_owned, None)
        updated = _merge(obj, patch)
        if updated != obj:
            if updated.get("spec") != obj.get("spec"):
                updated["metadata"]["generation"] = meta["generation"] + 1
            updated["metadata"]["resourceVersion"] = self._next_version()
            obj.clear()
            obj.update(updated)
        return 200, copy.deepcopy(obj)

    def _handler_class(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                fake.requests.append(Request(self.command, parts.path, parts.query,
                                             self.headers.get("Content-Type"), body))
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
