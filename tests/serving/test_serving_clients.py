"""Triton's own clients (``tritonclient``, written against Triton, not this server) at their defaults
and in JSON mode, over HTTP (sync and asyncio) and gRPC: what works with every other Open Inference
Protocol server works here.

Their defaults: HTTP sends BYTES in the binary tensor extension and asks for binary outputs, the sync
client with no Content-Type at all, the asyncio one with ``application/octet-stream`` (also in JSON
mode); gRPC sends ``raw_input_contents`` and reads only ``raw_output_contents``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest

from tests.serving.conftest import MODEL_NAME, TEXTS

LABELS = ["negative", "positive"]


@pytest.fixture(scope="module")
def expected(server):
    """V1's answers for TEXTS: labels, scores, probabilities [N, K]."""
    request = urllib.request.Request(f"{server.url}/v1/models/{MODEL_NAME}:predict",
                                     data=json.dumps({"instances": TEXTS}).encode(),
                                     headers={"Content-Type": "application/json"})
    predictions = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"]
    return ([p["label"] for p in predictions], [p["score"] for p in predictions],
            [[p["probabilities"][name] for name in LABELS] for p in predictions])


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
    return [output["name"] for output in result.get_response()["outputs"]
            if "binary_data_size" in output.get("parameters", {})]


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
        outputs = [httpclient.InferRequestedOutput("score", binary_data=False),
                   httpclient.InferRequestedOutput("label", binary_data=True)]
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


def test_tritonclient_grpc_raw_contents_both_ways(server, expected):
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=server.grpc_address)
    try:
        assert client.is_server_ready() and client.is_model_ready(MODEL_NAME)
        tensor = grpcclient.InferInput("text", [len(TEXTS)], "BYTES")
        tensor.set_data_from_numpy(texts_array())
        result = client.infer(MODEL_NAME, [tensor])
    finally:
        client.close()
    check(result, expected)
    assert len(result.get_response().raw_output_contents) == 3


def test_tritonclient_sees_named_errors(server):
    import tritonclient.grpc as grpcclient
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
    tensor = grpcclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["\u200b\ufeff".encode()], dtype=np.object_))
    client = grpcclient.InferenceServerClient(url=server.grpc_address)
    try:
        with pytest.raises(InferenceServerException, match="text\\[0\\] is empty or holds only whitespace") as caught:
            client.infer(MODEL_NAME, [tensor])
    finally:
        client.close()
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
