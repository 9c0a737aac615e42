"""SIGTERM while a request is in flight: the request still gets its answer, then the server exits."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.request

from tests.serving.conftest import MODEL_NAME, serve


def in_flight(server) -> float:
    text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
    return float(re.search(r"^textclf_http_requests_in_flight (\S+)$", text, re.M).group(1))


def test_sigterm_drains_in_flight_requests(decisive_model_dir, tmp_path):
    # A long batching delay keeps the request waiting inside the server when SIGTERM arrives.
    with serve(decisive_model_dir, tmp_path, "--enable_grpc", "false", "--max_batch_delay_ms", "3000") as server:
        answer = {}

        def predict():
            request = urllib.request.Request(
                f"{server.url}/v1/models/{MODEL_NAME}:predict",
                data=b'{"instances": ["still answered"]}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                answer["status"], answer["body"] = response.status, json.loads(response.read())

        client = threading.Thread(target=predict)
        client.start()
        deadline = time.monotonic() + 20
        while in_flight(server) < 2:  # the predict call plus this /metrics call
            assert time.monotonic() < deadline, "the request never reached the server"
            time.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        client.join(timeout=60)
        assert answer.get("status") == 200, answer
        assert len(answer["body"]["predictions"]) == 1
        assert server.process.wait(timeout=30) == 0
