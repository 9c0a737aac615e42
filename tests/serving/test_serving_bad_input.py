"""The bad-input table over raw HTTP: each case gets its status and a JSON error naming the problem,
and the server keeps answering afterwards."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from tests.serving.conftest import MODEL_NAME

V1 = f"/v1/models/{MODEL_NAME}:predict"
V2 = f"/v2/models/{MODEL_NAME}/infer"
JSON = {"Content-Type": "application/json"}


def post(server, path: str, body: bytes, headers=JSON):
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def v2_body(**tensor) -> bytes:
    return json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]} | tensor]}).encode()


CASES = [
    # (id, path, body, headers, status, message fragment)
    ("bad-json", V1, b'{"instances": [', JSON, 400, "Unrecognized request format"),
    ("not-an-object", V1, b'["a", "b"]', JSON, 400, 'must be a JSON object with "instances", got a JSON list'),
    ("missing-instances", V1, b'{"texts": ["a"]}', JSON, 400, 'request body has no "instances"'),
    ("instances-not-a-list", V1, b'{"instances": "a"}', JSON, 400, '"instances" must be a list of texts, got str'),
    ("empty-list", V1, b'{"instances": []}', JSON, 400, "instances is empty"),
    ("too-many", V1, json.dumps({"instances": ["a"] * 9}).encode(), JSON, 400,
     "instances has 9 texts, more than the limit of 8"),
    ("non-string", V1, b'{"instances": ["fine", 42]}', JSON, 400, "instances[1] must be a string, got int"),
    ("object-without-text", V1, b'{"instances": [{"body": "x"}]}', JSON, 400, "instances[0] must be a string, got dict"),
    ("empty-text", V1, b'{"instances": ["ok", ""]}', JSON, 400, "instances[1] is empty or whitespace only"),
    ("whitespace-text", V1, b'{"instances": [" \\n\\t "]}', JSON, 400, "instances[0] is empty or whitespace only"),
    ("wrong-content-type", V1, b'{"instances": ["a"]}', {"Content-Type": "text/plain"}, 415,
     "Content-Type must be application/json, got 'text/plain'"),
    ("no-content-type", V1, b'{"instances": ["a"]}', {}, 415, "Content-Type must be application/json, got 'none'"),
    ("unknown-model-v1", "/v1/models/nope:predict", b'{"instances": ["a"]}', JSON, 404,
     "Model with name nope does not exist"),
    ("unknown-model-v2", "/v2/models/nope/infer", v2_body(), JSON, 404, "Model with name nope does not exist"),
    ("v2-bad-json", V2, b'{"inputs": [', JSON, 400, "request body is not valid JSON"),
    ("v2-missing-inputs", V2, b'{"id": "1"}', JSON, 400, "invalid request body: inputs: Field required"),
    ("v2-wrong-input-name", V2, v2_body(name="review"), JSON, 400, "needs an input named \"text\""),
    ("v2-wrong-datatype", V2, v2_body(datatype="FP32", data=[1.0]), JSON, 400,
     'input "text" must have datatype BYTES, got FP32'),
    ("v2-shape-mismatch", V2, v2_body(shape=[3]), JSON, 400, "data does not match its shape [3]"),
    ("v2-non-string", V2, v2_body(data=[7]), JSON, 400, "text[0] must be a string, got int"),
    ("v2-whitespace", V2, v2_body(data=["   "]), JSON, 400, "text[0] is empty or whitespace only"),
]


@pytest.mark.parametrize("path, body, headers, status, message", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_gets_named_json_error(server, path, body, headers, status, message):
    got_status, got = post(server, path, body, headers)
    assert got_status == status, got
    assert set(got) == {"error"}
    assert message in got["error"]


def test_oversized_body_is_refused_before_it_is_read(server):
    """413 from the Content-Length header alone: only the headers are ever sent."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        sock.sendall(f"POST {V1} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {1 << 30}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply
    assert json.loads(payload) == {"error": f"request body is {1 << 30} bytes, over the limit of 20000 bytes"}


def test_oversized_chunked_body_is_cut_at_the_limit(server):
    body = json.dumps({"instances": ["x" * 30000]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    try:
        connection.request("POST", V1, body=iter([body[:15000], body[15000:]]), headers=JSON, encode_chunked=True)
        response = connection.getresponse()
        status, got = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 413
    assert "over the limit of 20000 bytes" in got["error"]


def test_server_still_answers_after_the_bad_inputs(server):
    status, got = post(server, V1, b'{"instances": ["still here"]}')
    assert status == 200
    assert len(got["predictions"]) == 1
