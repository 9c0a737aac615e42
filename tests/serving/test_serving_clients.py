"""Triton's own clients (``tritonclient``, written against Triton, not this server) at their defaults
and in JSON mode, over HTTP (sync and asyncio) and gRPC: what works with every other Open Inference
Protocol server works here.

Their defaults: HTTP sends BYTES in the binary tensor extension and asks for binary outputs, the sync
client with no Content-Type at all, the asyncio one with ``application/octet-stream`` (also in JSON
mode); gRPC sends ``raw_input_contents`` and reads only ``raw_output_contents``.

tritonclient's gRPC stubs and kserve's define the same protobuf messages, which one process's
descriptor pool refuses to hold twice, so the gRPC client runs in a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

from tests.serving.conftest import MODEL_NAME, TEXTS

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def expected(server):
    """V1's answers for TEXTS: labels, scores, probabilities [N, K]."""
    request = urllib.request.Request(
        f"{server.url}/v1/models/{MODEL_NAME}:predict",
        data=json.dumps({"instances": TEXTS}).encode(),
        headers={"Content-Type": "application/json"},
    )
    predictions = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"]
    return (
        [p["label"] for p in predictions],
        [p["score"] for p in predictions],
        [[p["probabilities"][name] for name in LABELS] for p in predictions],
    )


def texts_array() -> np.ndarray:
    return np.array([text.encode() for text in TEXTS], dtype=np.object_)


def check(result, expected, names=("label", "score", "probabilities")) -> None:
    labels, scores, probabilities = expected
    if "label" in names:
        assert [label.decode() for label in result.as_numpy("label").tolist()] == labels
    if "score" in names:
        assert result.as_numpy("score").tolist() == pytest.approx(scores, abs=1e-6)
    if "probabilities" in names:
        assert np.allclose(result.as_numpy("probabilities"), probabilities, atol=1e-6)


def binary_outputs(result) -> list[str]:
    return [
        output["name"]
        for output in result.get_response()["outputs"]
        if "binary_data_size" in output.get("parameters", {})
    ]


def test_tritonclient_http_defaults_binary_both_ways(server, expected):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    try:
        assert client.is_server_ready() and client.is_model_ready(MODEL_NAME)
        assert client.get_model_metadata(MODEL_NAME)["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        tensor = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(texts_array())  # binary_data=True by default
        result = client.infer(MODEL_NAME, [tensor], request_id="r-1")
    finally:
        client.close()
    check(result, expected)
    assert binary_outputs(result) == ["label", "score", "probabilities"]
    assert result.get_response()["id"] == "r-1"


def test_tritonclient_http_json_mode_without_content_type(server, expected):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    try:
        tensor = httpclient.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(texts_array(), binary_data=False)
        outputs = [
            httpclient.InferRequestedOutput("score", binary_data=False),
            httpclient.InferRequestedOutput("label", binary_data=True),
        ]
        result = client.infer(MODEL_NAME, [tensor], outputs=outputs)
    finally:
        client.close()
    check(result, expected, names=("label", "score"))
    assert [output["name"] for output in result.get_response()["outputs"]] == ["score", "label"]
    assert binary_outputs(result) == ["label"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_http_asyncio(server, expected, binary):
    import tritonclient.http.aio as aioclient

    async def infer():
        client = aioclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
        try:
            tensor = aioclient.InferInput("text", [len(TEXTS)], "BYTES")
            tensor.set_data_from_numpy(texts_array(), binary_data=binary)
            return await client.infer(MODEL_NAME, [tensor])
        finally:
            await client.close()

    result = asyncio.run(infer())
    check(result, expected)
    assert binary_outputs(result) == ["label", "score", "probabilities"]  # it asks for binary outputs


GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

address, model, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = grpcclient.InferenceServerClient(url=address)
tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
try:
    result = client.infer(model, [tensor])
except InferenceServerException as error:
    print(json.dumps({"status": error.status(), "message": error.message()}))
    raise SystemExit
print(json.dumps({
    "ready": client.is_server_ready() and client.is_model_ready(model),
    "label": [label.decode() for label in result.as_numpy("label").tolist()],
    "score": result.as_numpy("score").tolist(),
    "probabilities": result.as_numpy("probabilities").tolist(),
    "raw_outputs": len(result.get_response().raw_output_contents),
}))
"""


def triton_grpc(server, texts) -> dict:
    run = subprocess.run(
        [sys.executable, "-c", GRPC_CLIENT, server.grpc_address, MODEL_NAME, json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(run.stdout)


def test_tritonclient_grpc_raw_contents_both_ways(server, expected):
    got = triton_grpc(server, TEXTS)
    labels, scores, probabilities = expected
    assert got["ready"]
    assert got["label"] == labels
    assert got["score"] == pytest.approx(scores, abs=1e-6)
    assert np.allclose(got["probabilities"], probabilities, atol=1e-6)
    assert got["raw_outputs"] == 3


def test_tritonclient_sees_named_errors(server):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    tensor = httpclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["\u200b\ufeff".encode()], dtype=np.object_))
    client = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    try:
        with pytest.raises(InferenceServerException, match="text\\[0\\] is empty or holds only whitespace") as caught:
            client.infer(MODEL_NAME, [tensor])
    finally:
        client.close()
    assert caught.value.status() == "400"
    got = triton_grpc(server, ["\u200b\ufeff"])
    assert got["status"] == "StatusCode.INVALID_ARGUMENT"
    assert got["message"].startswith("text[0] is empty or holds only whitespace")
