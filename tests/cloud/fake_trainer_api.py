"""A fake Kubernetes API server on loopback with Kubeflow Trainer v2.3.0 installed.

It stands in for a GKE cluster with the Trainer controller, which cannot run here. The
``kubeflow`` SDK (TrainerClient) talks to it through the real ``kubernetes`` client over real
HTTP, so what is tested is the wire: paths, verbs, query strings, bodies, status codes.

What it serves (the calls kubeflow SDK 0.5.0 makes, captured against a probe of this kind):
- ``GET /api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public`` (the SDK's version check);
- ``GET .../namespaces/NS/trainingruntimes/NAME`` (404) then ``GET .../clustertrainingruntimes/NAME``
  (the torch-distributed runtime of the fixture);
- ``POST .../namespaces/NS/trainjobs``: the body is validated like an API server with
  ``fieldValidation=Strict`` against the pinned TrainJob CRD schema (unknown or mistyped fields:
  422 Invalid, as a ``Status``); an existing name is 409;
- ``GET``/``DELETE .../namespaces/NS/trainjobs/NAME``;
- ``GET /api/v1/namespaces/NS/pods`` (the job's node pods, by the JobSet labels the SDK selects on),
  ``GET .../pods/POD/log`` (``follow`` streams the script's lines) and ``GET .../events``.

The test plays the controller with a script: how many polls the pods stay Pending, the log
lines node 0 prints, and the outcome (``Complete`` or ``Failed``) once the log has been read.
What it does not: webhooks, CEL rules, JobSet, scheduling.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import yaml

from tests.rollout.crd import strictify  # the same closing of structural schemas as the KServe CRD's

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "trainer"
GROUP = "/apis/trainer.kubeflow.org/v1alpha1"
NOW = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trainjob_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((FIXTURES / "trainjob-schema.json").read_text())
    return jsonschema.Draft7Validator(strictify(copy.deepcopy(schema)))


def schema_errors(validator, body: dict) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body))


def torch_runtime() -> dict:
    return next(d for d in yaml.safe_load_all((FIXTURES / "torch-distributed-runtime.yaml").read_text()) if d)


@dataclass
class Script:
    """How the fake controller plays the TrainJob."""

    pending_polls: int = 1  # job GETs before the node pods run
    log_lines: list[str] = field(
        default_factory=lambda: ["rank 0: epoch 1 step 20/40 loss 0.41", "rank 0: model written"]
    )
    outcome: str = "Complete"  # or "Failed"; reached once node 0's log has been read
    never_runs: bool = False  # the pods stay Pending forever (no GPU node comes)
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) on node 0's pod


@dataclass
class Call:
    method: str
    path: str
    query: dict
    body: dict | None


class FakeTrainerApi:
    """The server; ``url`` for the client configuration, ``calls``, ``jobs`` and ``created`` to check."""

    def __init__(self, namespace: str, script: Script | None = None):
        self.namespace, self.script = namespace, script or Script()
        self.calls: list[Call] = []
        self.jobs: dict[str, dict] = {}
        self.created: list[dict] = []  # bodies accepted by POST, as sent
        self.deleted: list[str] = []
        self.job_gets = 0
        self.log_read = False
        self.validator = trainjob_validator()
        self.runtime = torch_runtime()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------- the controller's view

    def phase(self) -> str:
        if self.script.never_runs or self.job_gets <= self.script.pending_polls:
            return "Pending"
        return "Succeeded" if self.log_read and self.script.outcome == "Complete" else "Running"

    def status(self) -> dict:
        if not self.log_read:
            return {}
        condition = {
            "type": self.script.outcome,
            "status": "True",
            "reason": f"Jobs{self.script.outcome}",
            "message": f"trainjob {self.script.outcome.lower()}",
            "lastTransitionTime": NOW,
        }
        return {"conditions": [condition]}

    def pods(self, job: str) -> list[dict]:
        nodes = self.jobs[job]["spec"]["trainer"].get("numNodes", 1) if job in self.jobs else 0
        return [
            {
                "metadata": {
                    "name": f"{job}-node-{i}-0-x{i}",
                    "namespace": self.namespace,
                    "creationTimestamp": NOW,
                    "labels": {
                        "jobset.sigs.k8s.io/jobset-name": job,
                        "jobset.sigs.k8s.io/replicatedjob-name": "node",
                        "batch.kubernetes.io/job-completion-index": str(i),
                    },
                },
                "spec": {"containers": [{"name": "node", "image": self.jobs[job]["spec"]["trainer"].get("image", "")}]},
                "status": {"phase": self.phase()},
            }
            for i in range(nodes)
        ]

    def events(self) -> list[dict]:
        pods = [pod for job in self.jobs for pod in self.pods(job)][:1]
        return [
            {
                "metadata": {"name": f"event-{i}", "namespace": self.namespace},
                "type": "Warning",
                "reason": reason,
                "message": message,
                "firstTimestamp": NOW,
                "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"]},
            }
            for pod in pods
            for i, (reason, message) in enumerate(self.script.events)
        ]

    # ------------------------------------------------------------- HTTP

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, code: int, obj, content_type: str = "application/json"):
                data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def status(self, code: int, reason: str, message: str):
                self.send(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "code": code,
                        "reason": reason,
                        "message": message,
                    },
                )

            def handle_any(self, method: str):
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.calls.append(Call(method, url.path, urllib.parse.parse_qs(url.query), body))
                api.route(self, method, url.path, body)

            def do_GET(self):
                self.handle_any("GET")

            def do_POST(self):
                self.handle_any("POST")

            def do_DELETE(self):
                self.handle_any("DELETE")

        return Handler

    def route(self, h, method: str, path: str, body: dict | None) -> None:
        ns = f"/namespaces/{self.namespace}"
        if path == "/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public":
            return h.send(
                200,
                {
                    "kind": "ConfigMap",
                    "apiVersion": "v1",
                    "metadata": {"name": "kubeflow-trainer-public"},
                    "data": {"kubeflow_trainer_version": "v2.3.0"},
                },
            )
        if path.startswith(f"{GROUP}{ns}/trainingruntimes/"):
            return h.status(404, "NotFound", "trainingruntimes not found")
        if path == f"{GROUP}/clustertrainingruntimes/{self.runtime['metadata']['name']}":
            return h.send(200, self.runtime)
        if path.startswith(f"{GROUP}/clustertrainingruntimes/"):
            return h.status(404, "NotFound", "clustertrainingruntimes not found")
        if path == f"{GROUP}{ns}/trainjobs" and method == "POST":
            return self.create(h, body)
        if path.startswith(f"{GROUP}{ns}/trainjobs/"):
            return self.trainjob(h, method, path.rsplit("/", 1)[1])
        if path == f"/api/v1{ns}/pods":
            items = [pod for job in self.jobs for pod in self.pods(job)]
            return h.send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
        if path.startswith(f"/api/v1{ns}/pods/") and path.endswith("/log"):
            self.log_read = True
            return h.send(200, "".join(f"{line}\n" for line in self.script.log_lines).encode(), "text/plain")
        if path == f"/api/v1{ns}/events":
            return h.send(200, {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": self.events()})
        return h.status(404, "NotFound", f"no route for {method} {path}")

    def create(self, h, body: dict) -> None:
        errors = schema_errors(self.validator, body)
        if errors:
            return h.status(422, "Invalid", f"TrainJob.trainer.kubeflow.org is invalid: {errors}")
        name = body["metadata"]["name"]
        if name in self.jobs:
            return h.status(409, "AlreadyExists", f"trainjobs {name} already exists")
        self.created.append(copy.deepcopy(body))
        stored = copy.deepcopy(body)
        stored["metadata"].update(namespace=self.namespace, creationTimestamp=NOW, uid="uid-1", resourceVersion="1")
        self.jobs[name] = stored
        return h.send(201, stored)

    def trainjob(self, h, method: str, name: str) -> None:
        if name not in self.jobs:
            return h.status(404, "NotFound", f"trainjobs {name} not found")
        if method == "DELETE":
            self.deleted.append(name)
            del self.jobs[name]
            return h.send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
        self.job_gets += 1
        return h.send(200, {**self.jobs[name], "status": self.status()})
