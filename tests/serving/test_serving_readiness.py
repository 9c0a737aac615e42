"""Readiness tells the truth, nothing loads a model inside a request, and the model repository
extension (load/unload) is refused unless the server was started with it.

The in-process tests run the real gRPC server (``GRPCFrontend``) on loopback over kserve's data
plane with a stand-in model that counts its loads; the others use the real ``python -m serving``.
"""

from __future__ import annotations

import asyncio
import json
import socket

import grpc
import kserve
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

from serving.dataplane import DisabledRepositoryExtension, TextDataPlane, TextModelRepository
from serving.grpc_server import GRPCFrontend, TextServicer
from tests.serving.conftest import MODEL_NAME, TEXTS, http_request

JSON = {"Content-Type": "application/json"}
PREDICT = f"/v1/models/{MODEL_NAME}:predict"
BODY = json.dumps({"instances": TEXTS[:2]}).encode()


class CountingModel(kserve.Model):
    """Registered but not ready; counts the loads anyone asks of it."""

    def __init__(self):
        super().__init__("sleepy")
        self.loads = 0

    def load(self) -> bool:
        self.loads += 1
        self.ready = True
        return True


def test_readiness_is_false_without_a_ready_model():
    registry = TextModelRepository()
    dataplane = TextDataPlane(registry)
    assert not asyncio.run(dataplane.ready())  # no model at all (kserve answers true)
    model = CountingModel()
    registry.update(model)
    assert not asyncio.run(dataplane.ready())
    with pytest.raises(kserve.errors.ModelNotReady):
        asyncio.run(dataplane.get_model("sleepy"))
    assert model.loads == 0  # kserve would have loaded it, synchronously, inside the request
    model.ready = True
    assert asyncio.run(dataplane.ready())


def test_grpc_not_ready_is_unavailable_and_repository_is_permission_denied():
    model = CountingModel()
    registry = TextModelRepository()
    registry.update(model)
    dataplane = TextDataPlane(registry)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    frontend = GRPCFrontend(
        "127.0.0.1",
        port,
        TextServicer(dataplane, DisabledRepositoryExtension(registry)),
        max_message_bytes=1 << 20,
        max_workers=2,
        grace_period=1,
    )
    request = pb.ModelInferRequest(
        model_name="sleepy",
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[b"x"])
            )
        ],
    )

    async def main():
        serving = asyncio.create_task(frontend.serve())
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await asyncio.wait_for(channel.channel_ready(), 30)
                stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
                ready = (await stub.ServerReady(pb.ServerReadyRequest())).ready
                errors = []
                for call in (
                    stub.ModelInfer(request),
                    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="sleepy")),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await call
                    errors.append((caught.value.code(), caught.value.details()))
                return ready, errors
        finally:
            await frontend.stop()
            await serving

    ready, (infer, unload) = asyncio.run(main())
    assert not ready
    assert infer == (grpc.StatusCode.UNAVAILABLE, "Model with name sleepy is not ready.")
    assert unload[0] == grpc.StatusCode.PERMISSION_DENIED
    assert "the model repository extension is disabled" in unload[1]
    assert model.loads == 0
    assert "sleepy" in registry.models  # not unloaded


def test_repository_extension_is_refused_by_default(server):
    for action in ("load", "unload"):
        status, got, _ = http_request(server, "POST", f"/v2/repository/models/{MODEL_NAME}/{action}")
        assert status == 403, got
        assert got["error"] == (
            f"cannot {action} model '{MODEL_NAME}': the model repository extension is disabled on "
            "this server (start it with --enable_model_repository true, on a cluster-internal "
            "port only)"
        )
    with grpc.insecure_channel(server.grpc_address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel).RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name=MODEL_NAME), timeout=30
            )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert http_request(server, "GET", "/v2/health/ready")[:2] == (200, {"ready": True})
    assert http_request(server, "POST", PREDICT, BODY, JSON)[0] == 200


def readiness(server) -> tuple[int, int, bool]:
    """(/v2/health/ready status, /v1/models/NAME status, gRPC ServerReady)."""
    with grpc.insecure_channel(server.grpc_address) as channel:
        grpc_ready = (
            grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            .ServerReady(pb.ServerReadyRequest(), timeout=30)
            .ready
        )
    return (
        http_request(server, "GET", "/v2/health/ready")[0],
        http_request(server, "GET", f"/v1/models/{MODEL_NAME}")[0],
        grpc_ready,
    )


def test_with_the_flag_unload_makes_the_server_not_ready_and_load_brings_it_back(open_server):
    repository = f"/v2/repository/models/{MODEL_NAME}"
    try:
        assert readiness(open_server) == (200, 200, True)
        assert http_request(open_server, "POST", f"{repository}/unload")[:2] == (
            200,
            {"name": MODEL_NAME, "unload": True},
        )
        assert readiness(open_server) == (503, 404, False)
        assert http_request(open_server, "POST", PREDICT, BODY, JSON)[0] == 404
        assert http_request(open_server, "POST", f"{repository}/load")[:2] == (200, {"name": MODEL_NAME, "load": True})
        assert readiness(open_server) == (200, 200, True)
        assert http_request(open_server, "POST", PREDICT, BODY, JSON)[0] == 200
        # The same over gRPC (kserve's own servicer failed with INTERNAL after unloading).
        with grpc.insecure_channel(open_server.grpc_address) as channel:
            stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name=MODEL_NAME), timeout=30
            ).isUnloaded
            assert readiness(open_server) == (503, 404, False)
            assert stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=MODEL_NAME), timeout=60).isLoaded
        assert readiness(open_server) == (200, 200, True)
        assert http_request(open_server, "POST", "/v2/repository/models/nope/load")[0] == 404
    finally:
        http_request(open_server, "POST", f"{repository}/load")  # leave it serving for the other tests


def test_explain_never_echoes_the_request_headers():
    """kserve's DataPlane.explain starts its response headers from the request's (and so sent back
    Authorization, cookies...); this data plane answers with the model's headers only."""

    class Explaining(kserve.Model):
        def __init__(self):
            super().__init__("explaining")
            self.ready = True

        async def explain(self, payload, headers=None):
            return {"explanation": payload}

    registry = TextModelRepository()
    registry.update(Explaining())
    response, headers = asyncio.run(
        TextDataPlane(registry).explain(
            "explaining", {"instances": ["x"]}, headers={"authorization": "Bearer secret", "cookie": "a=b"}
        )
    )
    assert response == {"explanation": {"instances": ["x"]}}
    assert headers == {}
