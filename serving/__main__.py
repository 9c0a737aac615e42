"""``python -m serving --model_dir DIR --model_name NAME [kserve ModelServer flags]``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from serving.explain import ExplainSettings
from textclf.inference import InferenceSettings
from textclf.inference.hardware import cpu_threads
from textclf.settings import SettingsParser, setting


@dataclasses.dataclass
class ServerSettings:
    """The server around the classifier: where the model is, the address, batching and limits."""

    model_dir: str = setting(
        "/mnt/models", "Model artifact directory (where KServe's storage initializer puts storageUri)."
    )
    host: str = setting("0.0.0.0", "Address for REST and gRPC (127.0.0.1: this machine only).")
    max_batch_size: int = setting(32, "Most texts merged into one batch.")
    max_batch_delay_ms: float = setting(2.0, "How long a request waits for others to batch with.")
    max_instances: int = setting(128, "Most texts per request (400 above).")
    max_body_bytes: int = setting(4 << 20, "Largest request body (413 above).")
    max_queued_requests: int = setting(
        32,
        "Most inference requests (REST and gRPC) the server holds at once, from "
        "arrival to answer; more get 503 with Retry-After (gRPC RESOURCE_EXHAUSTED) "
        "before their body is read, so memory stays bounded under a burst.",
    )
    inference_workers: int = setting(
        1, "Batches run concurrently; N workers x 1 thread often beats 1 x N on small CPUs."
    )
    enable_model_repository: bool = setting(
        False,
        "Serve the model repository extension (POST /v2/repository/models/"
        "NAME/load|unload, gRPC RepositoryModelLoad/Unload). Whoever reaches the "
        "port can then unload the model: only on a cluster-internal port. Off: 403.",
    )


def build_parser() -> argparse.ArgumentParser:
    from kserve import model_server  # imported here: kserve parses sys.argv on import

    return SettingsParser(
        [InferenceSettings, ServerSettings, ExplainSettings],
        description=__doc__,
        parents=[model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def main(argv: list[str] | None = None) -> None:
    settings, server_settings, explain_settings, kserve_args = build_parser().parse_args_into_dataclasses(argv)
    from serving.model import TextClassifierModel
    from serving.server import TextServer

    if settings.threads is None:
        settings.threads = max(1, cpu_threads(None) // server_settings.inference_workers)
    # The server first: it configures kserve's logging, so that loading is logged too.
    server = TextServer(
        host=server_settings.host,
        max_body_bytes=server_settings.max_body_bytes,
        http_port=kserve_args.http_port,
        grpc_port=kserve_args.grpc_port,
        enable_grpc=kserve_args.enable_grpc,
        workers=1,
        max_threads=kserve_args.max_threads,
        enable_model_repository=server_settings.enable_model_repository,
        max_queued_requests=server_settings.max_queued_requests,
        enable_docs_url=kserve_args.enable_docs_url,
        enable_latency_logging=kserve_args.enable_latency_logging,
    )
    # This package logs through the handlers kserve just configured.
    package_logger = logging.getLogger("serving")
    package_logger.setLevel(logging.INFO)
    package_logger.handlers = logging.getLogger("kserve").handlers
    package_logger.propagate = False
    model = TextClassifierModel(
        kserve_args.model_name,
        server_settings.model_dir,
        settings,
        max_batch_size=server_settings.max_batch_size,
        max_batch_delay_ms=server_settings.max_batch_delay_ms,
        max_instances=server_settings.max_instances,
        inference_workers=server_settings.inference_workers,
        explain_settings=explain_settings,
    )
    model.load()
    logging.getLogger(__name__).info(
        "Serving %s on %s:%d", kserve_args.model_name, server_settings.host, kserve_args.http_port
    )
    server.start([model])
    # Requests are drained and the model is unloaded by now. Skip the interpreter's teardown,
    # which spends seconds garbage-collecting torch/transformers objects, eating the pod's grace period.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
