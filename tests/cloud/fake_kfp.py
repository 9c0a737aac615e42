"""A fake Kubeflow Pipelines API server (v2beta1 REST) on a loopback port.

It stands in for the KFP API server of a Kubeflow deployment, which cannot run here (no
Kubernetes cluster). It answers the calls ``kfp.Client`` makes with the JSON the real server
returns, and records every request so tests can assert what was sent (pipeline spec,
parameters, cron...). Only the routes that ``submit`` and ``schedule`` use exist.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


class FakeKfp:
    """State of the fake server: experiments, runs, recurring runs and the request log."""

    def __init__(self, run_states=("RUNNING", "SUCCEEDED")):
        self.requests: list[dict] = []
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        # States a run reports on successive GETs; the last one sticks.
        self.run_states = list(run_states)
        self._gets = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def posted(self, path_suffix: str) -> list[dict]:
        """Bodies of the POSTs whose path ends with ``path_suffix``."""
        return [r["body"] for r in self.requests if r["method"] == "POST" and r["path"].endswith(path_suffix)]

    def route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        if path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if path == f"{API}/experiments" and method == "GET":
            wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"] if "filter" in query else None
            found = [e for e in self.experiments.values() if wanted in (None, e["display_name"])]
            return 200, ({"experiments": found, "total_size": len(found)} if found else {})
        if path == f"{API}/experiments" and method == "POST":
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if path == f"{API}/runs" and method == "POST":
            run = {**body, "run_id": f"run-{len(self.runs) + 1}", "state": "PENDING"}
            self.runs[run["run_id"]] = run
            return 200, run
        match = re.fullmatch(f"{API}/runs/([^/:]+)", path)
        if match and method == "GET":
            if match.group(1) not in self.runs:
                return 404, {"error_message": "run not found", "code": 5}
            self._gets += 1
            state = self.run_states[min(self._gets, len(self.run_states)) - 1]
            return 200, {**self.runs[match.group(1)], "state": state}
        if path == f"{API}/recurringruns" and method == "POST":
            recurring = {**body, "recurring_run_id": f"rr-{len(self.recurring_runs) + 1}", "status": "ENABLED"}
            self.recurring_runs[recurring["recurring_run_id"]] = recurring
            return 200, recurring
        if path == f"{API}/recurringruns" and method == "GET":
            items = list(self.recurring_runs.values())
            return 200, {"recurringRuns": items, "total_size": len(items)} if items else {}
        match = re.fullmatch(f"{API}/recurringruns/([^/:]+)(:enable|:disable)?", path)
        if match:
            recurring = self.recurring_runs.get(match.group(1))
            if recurring is None:
                return 404, {"error_message": f"recurring run {match.group(1)} not found", "code": 5}
            if method == "DELETE":
                del self.recurring_runs[match.group(1)]
            elif match.group(2):
                recurring["status"] = "ENABLED" if match.group(2) == ":enable" else "DISABLED"
            return 200, {}
        return 404, {"error_message": f"no route {method} {path}", "code": 5}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                query = parse_qs(url.query)
                fake.requests.append({"method": self.command, "path": url.path, "query": query, "body": body})
                status, answer = fake.route(self.command, url.path, query, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler
