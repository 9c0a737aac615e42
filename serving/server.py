"""kserve's ModelServer, bound to one address and wearing this project's HTTP guards.

kserve binds REST to 0.0.0.0 and gRPC to [::]: right in a pod, wrong for a laptop or a test, so
``--host`` picks the address for both (default 0.0.0.0, as KServe expects).
"""

from __future__ import annotations

from concurrent import futures

from grpc import aio
from kserve import ModelServer
from kserve.logging import logger
from kserve.model_server import app
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from serving import guards


class BoundGRPCServer(GRPCServer):
    """kserve's gRPC server, listening on ``host`` instead of every interface."""

    def __init__(self, host: str, max_message_bytes: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.host = host
        self.max_message_bytes = max_message_bytes

    async def start(self, max_workers):
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(LoggingInterceptor(), ExceptionToStatusInterceptor()),
            options=[("grpc.max_send_message_length", self.max_message_bytes),
                     ("grpc.max_receive_message_length", self.max_message_bytes)],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = f"{self.host}:{self._port}"
        if self._server.add_insecure_port(address) == 0:
            raise OSError(f"gRPC could not bind {address}")
        logger.info("Starting gRPC server on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


class TextServer(ModelServer):
    """ModelServer with ``host``, a request body limit (REST and gRPC) and the guards of
    :mod:`serving.guards`. Shutdown is kserve's: on SIGTERM uvicorn stops accepting, finishes
    in-flight requests (``grace_period``), then the models are unloaded and the batcher drains.
    """

    def __init__(self, host: str, max_body_bytes: int, enable_grpc: bool = True, **kwargs):
        super().__init__(enable_grpc=False, **kwargs)  # gRPC is started here, bound to host
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.serve_grpc = enable_grpc

    def start(self, models) -> None:
        guards.install(app, self.max_body_bytes)
        super().start(models)

    def setup_event_loop(self):
        # Called by ModelServer.start after the servers are built and before they run.
        self._rest_server.config.host = self.host
        if self.serve_grpc:
            self._grpc_server = BoundGRPCServer(self.host, self.max_body_bytes, self.grpc_port, self.dataplane,
                                                self.model_repository_extension, kwargs={},
                                                grace_period=self.grace_period)
            self.servers.append(self._grpc_server.start(self.max_threads))
        super().setup_event_loop()
