"""V1 and V2 (REST and gRPC) through kserve's own clients against a real server on loopback."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest

from tests.serving.conftest import MODEL_NAME, TEXTS

LABELS = ["negative", "positive"]


def run(coroutine):
    return asyncio.run(coroutine)


async def rest_infer(server, protocol: str, data, response_headers: dict | None = None):
    client = InferenceRESTClient(RESTConfig(protocol=protocol, retries=0, timeout=30))
    try:
        return await client.infer(server.url, data, model_name=MODEL_NAME, response_headers=response_headers)
    finally:
        await client._client.aclose()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_readiness_and_health(server):
    assert get_json(f"{server.url}/v1/models/{MODEL_NAME}") == (200, {"name": MODEL_NAME, "ready": True})
    assert get_json(f"{server.url}/v2/health/ready") == (200, {"ready": True})
    assert get_json(f"{server.url}/v2/health/live") == (200, {"live": True})
    status, metadata = get_json(f"{server.url}/v2/models/{MODEL_NAME}")
    assert status == 200
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [output["name"] for output in metadata["outputs"]] == ["label", "score", "probabilities"]


def test_v1_predictions_in_request_order(server):
    response = run(rest_infer(server, "v1", {"instances": TEXTS}))
    predictions = response["predictions"]
    assert len(predictions) == len(TEXTS)
    for prediction in predictions:
        assert set(prediction) == {"label", "score", "probabilities"}
        assert list(prediction["probabilities"]) == LABELS
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["score"] == max(prediction["probabilities"].values())
        assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    # Order: each text alone gives the same answer as at its place in the batch.
    for text, prediction in zip(TEXTS, predictions):
        alone = run(rest_infer(server, "v1", {"instances": [text]}))["predictions"][0]
        assert alone["probabilities"] == pytest.approx(prediction["probabilities"], abs=1e-3)
    # The decisive fixture model really separates these texts, so order mix-ups would show.
    assert len({round(p["score"], 2) for p in predictions}) > len(TEXTS) // 2


def test_v1_accepts_text_objects(server):
    plain = run(rest_infer(server, "v1", {"instances": TEXTS[:3]}))
    objects = run(rest_infer(server, "v1", {"instances": [{"text": text} for text in TEXTS[:3]]}))
    assert objects == plain


def v2_request(texts, binary: bool = False, **request) -> InferRequest:
    """JSON data, or (``binary``) kserve's default for numpy data: the binary tensor extension on
    REST, ``raw_input_contents`` on gRPC."""
    tensor = InferInput(name="text", shape=[len(texts)], datatype="BYTES", data=None if binary else list(texts))
    if binary:
        tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=np.object_))
    return InferRequest(model_name=MODEL_NAME, infer_inputs=[tensor], request_id="req-1", **request)


async def grpc_infer(server, request: InferRequest):
    client = InferenceGRPCClient(server.grpc_address, retries=2, timeout=30)
    try:
        return await client.infer(request)
    finally:
        await client.close()


def check_v2(response, v1_predictions):
    outputs = {output.name: output for output in response.outputs}
    assert set(outputs) == {"label", "score", "probabilities"}
    assert outputs["label"].datatype == "BYTES" and outputs["label"].shape == [len(v1_predictions)]
    assert outputs["score"].datatype == "FP32" and outputs["score"].shape == [len(v1_predictions)]
    assert outputs["probabilities"].datatype == "FP32"
    assert outputs["probabilities"].shape == [len(v1_predictions), len(LABELS)]
    labels = [label.decode() if isinstance(label, bytes) else label for label in outputs["label"].as_numpy().tolist()]
    assert labels == [p["label"] for p in v1_predictions]
    assert outputs["score"].as_numpy().tolist() == pytest.approx([p["score"] for p in v1_predictions], abs=1e-5)
    expected = [p["probabilities"][name] for p in v1_predictions for name in LABELS]
    assert outputs["probabilities"].as_numpy().reshape(-1).tolist() == pytest.approx(expected, abs=1e-5)


def test_v2_rest_matches_v1(server):
    v1 = run(rest_infer(server, "v1", {"instances": TEXTS}))["predictions"]
    response = run(rest_infer(server, "v2", v2_request(TEXTS)))
    assert response.id == "req-1"
    assert response.model_name == MODEL_NAME
    check_v2(response, v1)


def test_v2_rest_binary_tensor_extension_both_ways(server):
    """kserve's client with numpy data sends the binary extension (its default); the answer is
    binary when asked, for all outputs or for the named ones (an output's own flag first)."""
    v1 = run(rest_infer(server, "v1", {"instances": TEXTS}))["predictions"]
    headers = {}
    check_v2(run(rest_infer(server, "v2", v2_request(TEXTS, binary=True), headers)), v1)
    assert headers["content-type"] == "application/json"  # not asked for binary
    headers = {}
    answer = run(
        rest_infer(server, "v2", v2_request(TEXTS, binary=True, parameters={"binary_data_output": True}), headers)
    )
    check_v2(answer, v1)
    assert headers["content-type"] == "application/octet-stream"
    assert int(headers["inference-header-content-length"]) > 0
    raw = urllib.request.urlopen(
        urllib.request.Request(
            f"{server.url}/v2/models/{MODEL_NAME}/infer",
            headers={"Content-Type": "application/json"},
            data=json.dumps(
                {
                    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
                    "parameters": {"binary_data_output": True},
                    "outputs": [{"name": "score", "parameters": {"binary_data": False}}, {"name": "label"}],
                }
            ).encode(),
        ),
        timeout=30,
    )
    body, header_length = raw.read(), int(raw.headers["inference-header-content-length"])
    head = json.loads(body[:header_length])
    assert [output["name"] for output in head["outputs"]] == ["score", "label"]  # those asked for, in order
    assert "data" in head["outputs"][0]  # its own binary_data false wins: JSON
    label_size = head["outputs"][1]["parameters"]["binary_data_size"]  # the request's flag: binary
    assert body[header_length:] == len(body[header_length + 4 :]).to_bytes(4, "little") + body[header_length + 4 :]
    assert label_size == len(body) - header_length


def test_v2_grpc_matches_v1(server):
    v1 = run(rest_infer(server, "v1", {"instances": TEXTS}))["predictions"]

    async def ready():
        client = InferenceGRPCClient(server.grpc_address, retries=2, timeout=30)
        try:
            return await client.is_server_ready()
        finally:
            await client.close()

    assert run(ready())
    check_v2(run(grpc_infer(server, v2_request(TEXTS))), v1)


def test_v2_grpc_raw_contents_both_ways(server):
    """``raw_input_contents`` in, ``raw_output_contents`` out (the rule of the protocol's gRPC)."""
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    v1 = run(rest_infer(server, "v1", {"instances": TEXTS}))["predictions"]
    check_v2(run(grpc_infer(server, v2_request(TEXTS, binary=True))), v1)
    with grpc.insecure_channel(server.grpc_address) as channel:
        raw = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            v2_request(TEXTS, binary=True).to_grpc(), timeout=30
        )
    assert len(raw.raw_output_contents) == 3 and not any(output.HasField("contents") for output in raw.outputs)


def test_grpc_lying_length_prefix_is_invalid_argument(server):
    import struct

    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    request = pb.ModelInferRequest(
        model_name=MODEL_NAME,
        inputs=[pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1])],
        raw_input_contents=[struct.pack("<I", 1000) + b"short"],
    )
    with grpc.insecure_channel(server.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == 'input "text": binary BYTES element 0 says it has 1000 bytes, but only 5 follow'


def test_grpc_bad_input_is_invalid_argument(server):
    import grpc

    with pytest.raises(grpc.RpcError) as caught:
        run(grpc_infer(server, v2_request(["fine", "   "])))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text[1] is empty or holds only whitespace" in caught.value.details()


def test_metrics_count_requests_and_errors_by_status(server):
    def counters():
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("textclf_http")
        }

    ok = 'textclf_http_requests_total{code="200",endpoint="v1_predict"}'
    bad = 'textclf_http_errors_total{code="400",endpoint="v1_predict"}'
    before = counters()
    run(rest_infer(server, "v1", {"instances": ["counted"]}))
    request = urllib.request.Request(
        f"{server.url}/v1/models/{MODEL_NAME}:predict",
        data=b'{"instances": []}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=10)
    after = counters()
    assert after[ok] == before.get(ok, 0) + 1
    assert after[bad] == before.get(bad, 0) + 1
    text = urllib.request.urlopen(f"{server.url}/metrics", timeout=10).read().decode()
    assert 'request_predict_seconds_count{model_name="tiny"}' in text  # kserve's histograms stay
