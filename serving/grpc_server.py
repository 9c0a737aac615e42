"""The gRPC (Open Inference Protocol) server, built from kserve's public parts and bound to one host.

kserve's ``GRPCServer`` listens on every interface, and its interceptor answers UNKNOWN for
errors without a ``reason`` attribute (ModelNotReady) and INVALID_ARGUMENT for server faults
(InferenceError). Here: kserve's ``InferenceServicer`` (strict ``raw_input_contents``, working
repository calls), kserve's logging interceptor, and :class:`StatusInterceptor`.
"""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from grpc import aio
from grpc_interceptor.exceptions import GrpcException
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, ServerNotLive, ServerNotReady, UnsupportedProtocol
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor, LoggingInterceptor
from kserve.protocol.grpc.servicer import InferenceServicer

from serving.batching import QueueFull, RequestQueue
from serving.binary import check_raw_input_contents
from serving.dataplane import RepositoryDisabled

logger = logging.getLogger(__name__)

# The client's faults, answered without a stack trace in the log; anything else is INTERNAL.
CLIENT_ERRORS = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (UnsupportedProtocol, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, grpc.StatusCode.NOT_FOUND),
    (RepositoryDisabled, grpc.StatusCode.PERMISSION_DENIED),
    (ModelNotReady, grpc.StatusCode.UNAVAILABLE),
    (QueueFull, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (ServerNotReady, grpc.StatusCode.UNAVAILABLE),
    (ServerNotLive, grpc.StatusCode.UNAVAILABLE),
    (NotImplementedError, grpc.StatusCode.UNIMPLEMENTED),
)


def status_of(error: Exception) -> grpc.StatusCode | None:
    for kind, code in CLIENT_ERRORS:
        if isinstance(error, kind):
            return code
    return None


class StatusInterceptor(ExceptionToStatusInterceptor):
    """Each error class to its status code, with the error's own message."""

    async def handle_exception(self, ex, request_or_iterator, context, method_name):
        code = status_of(ex)
        if code is not None:
            logger.info("gRPC %s: %s %s", method_name, code.name, ex)
            await context.abort(code, str(ex))
        elif isinstance(ex, GrpcException):
            await super().handle_exception(ex, request_or_iterator, context, method_name)
        else:
            logger.error("gRPC %s failed", method_name, exc_info=ex)
            await context.abort(grpc.StatusCode.INTERNAL, "Internal server error")


class TextServicer(InferenceServicer):
    """kserve's servicer; ModelInfer takes a place in the server's request queue (REST's too).

    Args:
        request_queue: shared with the REST guard; None leaves gRPC unbounded (tests of other parts).
    """

    def __init__(self, dataplane, repository_extension, request_queue: RequestQueue | None = None):
        super().__init__(dataplane, repository_extension)
        self.repository_extension = repository_extension
        self.request_queue = request_queue

    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:
        check_raw_input_contents(request)  # kserve's decoder would raise struct.error: INTERNAL
        if self.request_queue is None:
            return await super().ModelInfer(request, context)
        self.request_queue.enter()
        try:
            return await super().ModelInfer(request, context)
        finally:
            self.request_queue.leave()

    # kserve's versions index the extension's None result (TypeError) after having done the work.
    async def RepositoryModelLoad(self, request, context) -> pb.RepositoryModelLoadResponse:
        await self.repository_extension.load(request.model_name)
        return pb.RepositoryModelLoadResponse(model_name=request.model_name, isLoaded=True)

    async def RepositoryModelUnload(self, request, context) -> pb.RepositoryModelUnloadResponse:
        await self.repository_extension.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse(model_name=request.model_name, isUnloaded=True)


class GRPCFrontend:
    """Serves :class:`TextServicer` on ``host:port`` until :meth:`stop`.

    Args:
        max_message_bytes: largest message received or sent (the REST body limit's twin).
        max_workers: threads of the gRPC server's executor.
        grace_period: seconds in-flight calls get to finish on stop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        servicer: TextServicer,
        max_message_bytes: int,
        max_workers: int,
        grace_period: float,
    ):
        self.address = f"{host}:{port}"
        self.servicer = servicer
        self.max_message_bytes = max_message_bytes
        self.max_workers = max_workers
        self.grace_period = grace_period
        self.server: aio.Server | None = None

    async def serve(self) -> None:
        self.server = aio.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers),
            interceptors=(LoggingInterceptor(), StatusInterceptor()),
            options=[
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.max_receive_message_length", self.max_message_bytes),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, self.server)
        if self.server.add_insecure_port(self.address) == 0:
            raise OSError(f"gRPC could not bind {self.address}")
        logger.info("Starting gRPC server on %s", self.address)
        await self.server.start()
        await self.server.wait_for_termination()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=self.grace_period)
