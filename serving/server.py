"""kserve's ModelServer, bound to one address, with a truthful data plane, a strict gRPC server,
the model repository extension off by default, and this project's HTTP guards and OpenAPI.

kserve binds REST to 0.0.0.0 and gRPC to [::]: right in a pod, wrong for a laptop or a test, so
``--host`` picks the address for both (default 0.0.0.0, as KServe expects). The only private
kserve attribute used lives in :mod:`serving.kserve_adapter`.
"""

from __future__ import annotations

import asyncio

from kserve import ModelServer
from kserve.model_server import app

from serving import guards, openapi
from serving.batching import RequestQueue
from serving.dataplane import TextDataPlane, TextModelRepository, repository_extension
from serving.grpc_server import GRPCFrontend, TextServicer
from serving.kserve_adapter import bind_rest_server


class TextServer(ModelServer):
    """ModelServer with ``host``, a request body limit (REST and gRPC), the guards of
    :mod:`serving.guards` and the data plane of :mod:`serving.dataplane`. Shutdown is kserve's: on
    SIGTERM uvicorn stops accepting, finishes in-flight requests (``grace_period``), gRPC gets the
    same grace, then the models are unloaded and the batcher drains.

    Args:
        enable_model_repository: serve the model repository extension (load/unload); off, those
            calls get 403 / PERMISSION_DENIED.
        max_queued_requests: inference requests (REST and gRPC) held at once; more get 503 with
            ``Retry-After`` / RESOURCE_EXHAUSTED (:class:`serving.batching.RequestQueue`).
    """

    def __init__(
        self,
        host: str,
        max_body_bytes: int,
        max_queued_requests: int,
        enable_grpc: bool = True,
        enable_model_repository: bool = False,
        **kwargs,
    ):
        registry = TextModelRepository()
        super().__init__(enable_grpc=False, registered_models=registry, **kwargs)  # gRPC is started here
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.serve_grpc = enable_grpc
        self.dataplane = TextDataPlane(registry)
        self.model_repository_extension = repository_extension(registry, enable_model_repository)
        self.grpc_frontend: GRPCFrontend | None = None
        self.request_queue = RequestQueue(max_queued_requests)

    def start(self, models) -> None:
        guards.install(app, self.max_body_bytes, self.request_queue)
        openapi.install(app, models, self.max_body_bytes, self.model_repository_extension)
        super().start(models)

    def setup_event_loop(self):
        # Called by ModelServer.start after the REST server is built and before the servers run.
        bind_rest_server(self, self.host)
        if self.serve_grpc:
            servicer = TextServicer(self.dataplane, self.model_repository_extension, self.request_queue)
            self.grpc_frontend = GRPCFrontend(
                self.host, self.grpc_port, servicer, self.max_body_bytes, self.max_threads, self.grace_period
            )
            self.servers.append(self.grpc_frontend.serve())
        super().setup_event_loop()

    def stop(self, sig: int):
        if self.grpc_frontend is not None:
            asyncio.create_task(self.grpc_frontend.stop())
        super().stop(sig)
